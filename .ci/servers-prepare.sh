#!/usr/bin/env bash
# Install PostgreSQL 15 and RabbitMQ from Debian's packages for the tests that start their own
# servers (tests/servers.py: 127.0.0.1, ephemeral ports, temporary directories), and
# Prometheus for its `promtool` (tests/api/test_metrics.py checks /metrics with it).
#
# Idempotent: does nothing when all are installed. Otherwise (as root) runs `apt-get update`
# and installs what is missing, with a policy-rc.d that refuses every service start for the
# length of the install, so no system PostgreSQL or RabbitMQ is left running (the tests start
# their own). `make test` calls it when the binaries are missing; not as root, it only says
# what to run and exits 1.
set -euo pipefail

PG_CTL=/usr/lib/postgresql/15/bin/pg_ctl
RABBITMQ_SERVER=/usr/lib/rabbitmq/bin/rabbitmq-server
PROMTOOL=/usr/bin/promtool
POLICY=/usr/sbin/policy-rc.d

log() { printf '[servers-prepare] %s\n' "$*" >&2; }

missing=()
[ -x "$PG_CTL" ] || missing+=(postgresql)
[ -x "$RABBITMQ_SERVER" ] || missing+=(rabbitmq-server)
[ -x "$PROMTOOL" ] || missing+=(prometheus)
if [ ${#missing[@]} -eq 0 ]; then
    log "postgresql, rabbitmq-server and prometheus (promtool) are installed"
    exit 0
fi
if [ "$(id -u)" != 0 ]; then
    log "missing: ${missing[*]}. Install them as root (no service needs to run):"
    log "    sudo apt-get update && sudo apt-get install -y --no-install-recommends ${missing[*]}"
    log "or run: sudo bash .ci/servers-prepare.sh"
    exit 1
fi

started=$SECONDS
placed_policy=""
if [ ! -e "$POLICY" ]; then
    # 101 = "action forbidden": invoke-rc.d starts no service while the packages install.
    printf '#!/bin/sh\nexit 101\n' > "$POLICY"
    chmod 755 "$POLICY"
    placed_policy=1
fi
remove_policy() { if [ -n "$placed_policy" ]; then rm -f "$POLICY"; fi; }
trap remove_policy EXIT

export DEBIAN_FRONTEND=noninteractive
log "installing ${missing[*]}"
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" > /dev/null
[ -x "$PG_CTL" ] || { log "ERROR: $PG_CTL is still missing"; exit 1; }
[ -x "$RABBITMQ_SERVER" ] || { log "ERROR: $RABBITMQ_SERVER is still missing"; exit 1; }
[ -x "$PROMTOOL" ] || { log "ERROR: $PROMTOOL is still missing"; exit 1; }
log "installed ${missing[*]} in $((SECONDS - started)) s"
