#!/usr/bin/env bash
# Build the local stand-ins for the official PostgreSQL and RabbitMQ images that
# docker-compose.fleet.yml runs, for machines that cannot pull from Docker Hub (CI here):
#
#   ovbench-postgres:local    docker/postgres  (Debian's postgresql-15)
#   ovbench-rabbitmq:local    docker/rabbitmq  (Debian's rabbitmq-server 3.10)
#
# Each is BASE_IMAGE plus Debian's packages, fetched on this machine as .deb files
# (.ci/debs-fetch.sh, into docker/*/debs/, git-ignored) and installed by a
# `docker build --network none`. Idempotent: an image already there is kept while its label
# ovbench.recipe matches (a hash of its docker/NAME files, packages and base image id); an edit
# rebuilds it. Every step prints its time. Then:
#
#   OVBENCH_POSTGRES_IMAGE=ovbench-postgres:local OVBENCH_RABBITMQ_IMAGE=ovbench-rabbitmq:local \
#       docker-compose -f docker-compose.fleet.yml up -d
#
# Settings (environment): DOCKER_HOST (the engine; .ci/run sets it), OVBENCH_BASE_IMAGE (a
# Debian bookworm image; default ovbench-base:bookworm from .ci/docker-prepare.sh;
# debian:bookworm-slim does too where it can be pulled).
set -euo pipefail
cd "$(dirname "$0")/.."

BASE_IMAGE=${OVBENCH_BASE_IMAGE:-ovbench-base:bookworm}

log() { printf '[fleet-images] %s\n' "$*" >&2; }
die() {
    log "ERROR: $*"
    exit 1
}
now() { date +%s.%N; }
took() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1f s", b - a }'; }

# build_stand_in NAME PACKAGE...: ovbench-NAME:local from docker/NAME.
build_stand_in() {
    local name=$1
    shift
    local tag=ovbench-$name:local dir=docker/$name t0 recipe
    recipe=$( (
        cd "$dir" && cat Dockerfile entrypoint.sh
        echo "$* $(docker image inspect --format '{{.Id}}' "$BASE_IMAGE")"
    ) | sha256sum | cut -c1-16)
    if [ "$(docker image inspect --format '{{index .Config.Labels "ovbench.recipe"}}' "$tag" \
        2> /dev/null)" = "$recipe" ]; then
        log "$tag is already there"
        return
    fi
    t0=$(now)
    bash .ci/debs-fetch.sh "$BASE_IMAGE" "$dir/debs" "$@"
    log "$tag: .deb files took $(took "$t0")"
    t0=$(now)
    # The classic builder: any engine, no plugin (as tests/container does).
    local old buildlog
    old=$(docker image inspect --format '{{.Id}}' "$tag" 2> /dev/null || true)
    buildlog=$(mktemp)
    DOCKER_BUILDKIT=0 docker build --quiet --network none --build-arg "BASE_IMAGE=$BASE_IMAGE" \
        --label "ovbench.recipe=$recipe" --tag "$tag" "$dir" > /dev/null 2> "$buildlog" \
        || { cat "$buildlog" >&2; rm -f "$buildlog"; die "docker build of $tag failed"; }
    rm -f "$buildlog"
    # The image this one replaces (an older recipe), unless a container still uses it.
    if [ -n "$old" ] && [ "$old" != "$(docker image inspect --format '{{.Id}}' "$tag")" ]; then
        docker image rm "$old" > /dev/null 2>&1 || true
    fi
    log "$tag: image build took $(took "$t0") ($(docker image inspect --format '{{.Size}}' "$tag" \
        | awk '{ printf "%.0f MB", $1 / 1e6 }'))"
}

docker image inspect "$BASE_IMAGE" > /dev/null 2>&1 \
    || die "no base image $BASE_IMAGE: .ci/docker-prepare.sh makes it (or set OVBENCH_BASE_IMAGE)"
started=$(now)
build_stand_in postgres postgresql-15
build_stand_in rabbitmq rabbitmq-server
log "done in $(took "$started")"
