#!/usr/bin/env bash
# Stop the dockerd that .ci/docker-prepare.sh started, and only that one (by its recorded pid).
# Its data root stays, so the base image is reused by the next run on this machine.
set -euo pipefail

EXEC_ROOT=${OVBENCH_CI_DOCKER_EXEC:-/run/ovbench-ci-docker}
OWNED=$EXEC_ROOT.started-here

log() { printf '[docker-stop] %s\n' "$*" >&2; }

if [ ! -f "$OWNED" ]; then
    log "no dockerd started by docker-prepare.sh: nothing to stop"
    exit 0
fi
pid=$(cat "$OWNED")
if [ -n "$pid" ] && [ "$(cat "/proc/$pid/comm" 2> /dev/null)" = dockerd ]; then
    log "stopping dockerd (pid $pid)"
    kill -TERM "$pid"
    # dockerd stops its containers (10 s each at most) and its containerd, then exits.
    for _ in $(seq 1 300); do
        kill -0 "$pid" 2> /dev/null || break
        sleep 0.1
    done
    if kill -0 "$pid" 2> /dev/null; then
        log "dockerd still up after 30 s: killing it"
        kill -KILL "$pid" 2> /dev/null || true
    fi
fi
rm -f "$OWNED"
log "stopped"
