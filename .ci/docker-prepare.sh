#!/usr/bin/env bash
# Prepare a Docker engine for tests/container (run as root; .ci/run calls it before `make test`).
#
#   1. installs Debian's docker.io, docker-compose (1.29) and debootstrap if missing;
#   2. starts a private dockerd (own socket, data root and exec root) unless one already answers;
#   3. builds the base image ovbench-base:bookworm with debootstrap from this machine's own apt
#      mirror (no registry is reachable for `FROM`), unless it is already there;
#   4. writes the wheelhouse (`pip wheel`) that the image installs from with no network;
#   5. builds the PostgreSQL and RabbitMQ stand-in images for docker-compose.fleet.yml
#      (.ci/fleet-images.sh) and fetches the GPU agent image's .deb files (.ci/gpu-debs.sh),
#      each skipped when already there.
#
# The engine stays up for the test; .ci/docker-stop.sh stops it. Every step prints its time.
# Settings (environment): OVBENCH_CI_DOCKER_SOCK, OVBENCH_CI_DOCKER_ROOT, OVBENCH_CI_DOCKER_EXEC,
# OVBENCH_BASE_IMAGE (the tag to make), PYTHON (the interpreter that builds the wheels).
set -euo pipefail
cd "$(dirname "$0")/.."

SOCK=${OVBENCH_CI_DOCKER_SOCK:-/run/ovbench-ci-docker.sock}
DATA_ROOT=${OVBENCH_CI_DOCKER_ROOT:-/var/lib/ovbench-ci-docker}
EXEC_ROOT=${OVBENCH_CI_DOCKER_EXEC:-/run/ovbench-ci-docker}
PIDFILE=$EXEC_ROOT.pid
OWNED=$EXEC_ROOT.started-here # present while a dockerd that this script started runs
LOGFILE=/var/log/ovbench-ci-dockerd.log
BASE_IMAGE=${OVBENCH_BASE_IMAGE:-ovbench-base:bookworm}
SUITE=bookworm # Debian 12: python3 is 3.11, the version the project pins
PYTHON=${PYTHON:-python3}
export DOCKER_HOST=unix://$SOCK

log() { printf '[docker-prepare] %s\n' "$*" >&2; }
die() {
    log "ERROR: $*"
    exit 1
}
now() { date +%s.%N; }
took() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1f s", b - a }'; }

# Is $1 the pid of a running (not zombie) dockerd?
live_dockerd() {
    [ -n "$1" ] && [ "$(cat "/proc/$1/comm" 2> /dev/null)" = dockerd ] \
        && ! grep -q '^State:[[:space:]]*Z' "/proc/$1/status" 2> /dev/null
}

engine_answers() { timeout 10 docker version --format '{{.Server.Version}}' > /dev/null 2>&1; }

install_packages() {
    local missing=()
    command -v dockerd > /dev/null || missing+=(docker.io)
    command -v docker-compose > /dev/null || missing+=(docker-compose)
    command -v debootstrap > /dev/null || missing+=(debootstrap)
    if [ ${#missing[@]} -eq 0 ]; then
        log "packages: docker.io, docker-compose and debootstrap are installed"
        return
    fi
    log "packages: installing ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}" > /dev/null
}

start_engine() {
    if engine_answers; then
        log "engine: a dockerd already answers on $SOCK; using it"
        return
    fi
    # A pidfile left by a dockerd that was killed (a session's processes end before CI runs)
    # would stop a new one from starting; one still shutting down gets 15 s to go.
    if [ -f "$PIDFILE" ]; then
        local old
        old=$(cat "$PIDFILE")
        for _ in $(seq 1 150); do
            live_dockerd "$old" || break
            sleep 0.1
        done
        ! live_dockerd "$old" || die "dockerd pid $old holds $PIDFILE but does not answer on $SOCK"
        log "engine: removing the stale pidfile of a dockerd that is gone (pid $old)"
        rm -f "$PIDFILE"
    fi
    mkdir -p "$DATA_ROOT" "$EXEC_ROOT"
    log "engine: starting dockerd on $SOCK (data root $DATA_ROOT, log $LOGFILE)"
    setsid dockerd --host "unix://$SOCK" --data-root "$DATA_ROOT" --exec-root "$EXEC_ROOT" \
        --pidfile "$PIDFILE" < /dev/null >> "$LOGFILE" 2>&1 &
    local pid=$!
    echo "$pid" > "$OWNED"
    local deadline=$((SECONDS + 60))
    until engine_answers; do
        if ! kill -0 "$pid" 2> /dev/null; then
            tail -n 30 "$LOGFILE" >&2 || true
            rm -f "$OWNED"
            die "dockerd exited during start-up (log above)"
        fi
        [ "$SECONDS" -lt "$deadline" ] || die "dockerd did not answer on $SOCK within 60 s"
        sleep 0.2
    done
}

# The first http(s) mirror in this machine's apt sources that serves Debian's $SUITE, or failing
# that the host's own release. Read at run time: the repository names no host.
apt_mirror() {
    "$PYTHON" - "$SUITE" << 'EOF'
import glob, os, re, sys

wanted = sys.argv[1]
codename = ""
if os.path.exists("/etc/os-release"):
    m = re.search(r"^VERSION_CODENAME=\"?([^\"\n]*)", open("/etc/os-release").read(), re.M)
    codename = m.group(1) if m else ""

entries = []  # (uri, suites)
for path in sorted(glob.glob("/etc/apt/sources.list.d/*.sources")):
    for para in re.split(r"\n\s*\n", open(path).read()):
        fields = {}
        for line in para.splitlines():
            if line.startswith("#") or ":" not in line or line[0].isspace():
                continue
            key, value = line.split(":", 1)
            fields[key.strip().lower()] = value.split()
        if "deb" not in fields.get("types", []) or fields.get("enabled", ["yes"])[0] == "no":
            continue
        for uri in fields.get("uris", []):
            entries.append((uri, fields.get("suites", [])))
for path in ["/etc/apt/sources.list", *sorted(glob.glob("/etc/apt/sources.list.d/*.list"))]:
    if not os.path.exists(path):
        continue
    for line in open(path):
        line = re.sub(r"\[[^\]]*\]", " ", line.split("#", 1)[0]).split()
        if len(line) >= 3 and line[0] == "deb":
            entries.append((line[1], [line[2]]))

entries = [(u.rstrip("/"), s) for u, s in entries if re.match(r"https?://", u)]
for suite in (wanted, codename):
    for uri, suites in entries:
        if suite and suite in suites and "security" not in uri:
            print(uri)
            sys.exit(0)
sys.exit(f"no apt source for Debian {wanted} or {codename!r} in /etc/apt")
EOF
}

build_base_image() {
    if docker image inspect "$BASE_IMAGE" > /dev/null 2>&1; then
        log "base image: $BASE_IMAGE is already there"
    else
        local mirror workdir
        mirror=$(apt_mirror) || die "cannot read a Debian mirror from /etc/apt"
        workdir=$(mktemp -d /var/tmp/ovbench-base.XXXXXX)
        log "base image: debootstrap $SUITE (minbase + python3) from $mirror"
        if ! debootstrap --variant=minbase --arch "$(dpkg --print-architecture)" \
            --include=python3,python3-venv,python3-pip,ca-certificates \
            "$SUITE" "$workdir/rootfs" "$mirror" > "$workdir/debootstrap.log" 2>&1; then
            tail -n 30 "$workdir/debootstrap.log" >&2
            rm -rf "$workdir"
            die "debootstrap failed (log above)"
        fi
        # What apt downloaded is not needed in the image.
        rm -rf "$workdir"/rootfs/var/cache/apt/archives/*.deb "$workdir"/rootfs/var/lib/apt/lists/*
        tar -C "$workdir/rootfs" -c . | docker import --change 'ENV LANG=C.UTF-8' \
            --change 'CMD ["/bin/bash"]' - "$BASE_IMAGE" > /dev/null
        rm -rf "$workdir"
    fi
    # The host builds the wheels: the image must have the same architecture and Python ABI.
    local host_arch image_arch host_abi image_abi
    host_arch=$(docker version --format '{{.Server.Arch}}')
    image_arch=$(docker image inspect --format '{{.Architecture}}' "$BASE_IMAGE")
    [ "$host_arch" = "$image_arch" ] || die "$BASE_IMAGE is $image_arch, the host is $host_arch"
    local abi_probe='import sys; print(sys.implementation.cache_tag)'
    host_abi=$("$PYTHON" -c "$abi_probe")
    image_abi=$(docker run --rm --network none "$BASE_IMAGE" python3 -c "$abi_probe")
    [ "$host_abi" = "$image_abi" ] ||
        die "$BASE_IMAGE has Python $image_abi but $PYTHON is $host_abi: wheels would not fit"
    log "base image: $BASE_IMAGE is $image_arch with $image_abi, like the host"
}

build_wheelhouse() {
    rm -f wheelhouse/ovbench-*.whl
    "$PYTHON" -m pip wheel -qq --disable-pip-version-check --wheel-dir wheelhouse . \
        || die "pip wheel failed"
    log "wheelhouse: $(find wheelhouse -name '*.whl' | wc -l) wheels, $(du -sh wheelhouse | cut -f1)"
}

build_fleet_images() {
    OVBENCH_BASE_IMAGE=$BASE_IMAGE bash .ci/fleet-images.sh || die ".ci/fleet-images.sh failed"
}

fetch_gpu_debs() {
    OVBENCH_BASE_IMAGE=$BASE_IMAGE bash .ci/gpu-debs.sh || die ".ci/gpu-debs.sh failed"
}

[ "$(id -u)" = 0 ] || die "must run as root (installs packages and starts dockerd)"
for step in install_packages start_engine build_base_image build_wheelhouse build_fleet_images \
    fetch_gpu_debs; do
    t0=$(now)
    "$step"
    log "$step took $(took "$t0")"
done
log "ready: DOCKER_HOST=$DOCKER_HOST"
