#!/usr/bin/env bash
# Install Debian's Chromium for the dashboard's browser tests (tests/web/test_dashboard.py
# drives /usr/bin/chromium with Python's playwright; `playwright install` downloads a browser
# build, which fails offline, so the tests use Debian's instead).
#
# Idempotent: does nothing when /usr/bin/chromium is there. Otherwise (as root) runs
# `apt-get update` and installs it. `make test` calls it; not as root, it only says what to
# run and exits 1 (the browser tests then fail, naming this script).
set -euo pipefail

CHROMIUM=/usr/bin/chromium

log() { printf '[browser-prepare] %s\n' "$*" >&2; }

if [ -x "$CHROMIUM" ]; then
    log "chromium is installed"
    exit 0
fi
if [ "$(id -u)" != 0 ]; then
    log "missing: chromium. Install it as root:"
    log "    sudo apt-get update && sudo apt-get install -y --no-install-recommends chromium"
    log "or run: sudo bash .ci/browser-prepare.sh"
    exit 1
fi

started=$SECONDS
export DEBIAN_FRONTEND=noninteractive
log "installing chromium"
apt-get update -qq
apt-get install -y -qq --no-install-recommends chromium > /dev/null
[ -x "$CHROMIUM" ] || { log "ERROR: $CHROMIUM is still missing"; exit 1; }
log "installed chromium in $((SECONDS - started)) s"
