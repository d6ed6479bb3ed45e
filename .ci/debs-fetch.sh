#!/usr/bin/env bash
# Download Debian packages and what they depend on as .deb files, for an image build with no
# network (`docker build --network none`) that installs them offline into IMAGE or an image
# derived from it (docker/postgres, docker/rabbitmq, docker/agent-gpu).
#
#   bash .ci/debs-fetch.sh IMAGE DEST PACKAGE...
#
# This machine's apt resolves the dependencies against IMAGE's own dpkg status, so DEST gets
# exactly the packages IMAGE lacks (recommends left out), from this machine's Debian mirror.
# IMAGE must be the same Debian release as this machine (bookworm here; checked).
# Idempotent: DEST/.packages records what was asked; when it matches and every .deb it lists is
# there, nothing is downloaded. When apt cannot find or download a package (no lists yet, or
# lists older than the mirror), it runs `apt-get update` once (as root) and tries again.
set -euo pipefail

log() { printf '[debs-fetch] %s\n' "$*" >&2; }
die() {
    log "ERROR: $*"
    exit 1
}

[ $# -ge 3 ] || die "usage: $0 IMAGE DEST PACKAGE..."
IMAGE=$1
DEST=$2
shift 2
WANTED="$*"
STAMP=$DEST/.packages

if [ -f "$STAMP" ] && [ "$(head -n 1 "$STAMP")" = "$IMAGE: $WANTED" ]; then
    complete=1
    while read -r deb; do
        [ -f "$DEST/$deb" ] || complete=""
    done < <(tail -n +2 "$STAMP")
    if [ -n "$complete" ]; then
        log "$DEST: $(($(wc -l < "$STAMP") - 1)) .deb files for '$WANTED' already there"
        exit 0
    fi
fi

work=$(mktemp -d /var/tmp/ovbench-debs.XXXXXX)
trap 'rm -rf "$work"' EXIT

# IMAGE's dpkg status (what it has installed) and release.
docker run --rm --network none --entrypoint cat "$IMAGE" /var/lib/dpkg/status > "$work/status" \
    || die "cannot read /var/lib/dpkg/status from $IMAGE"
image_release=$(docker run --rm --network none --entrypoint cat "$IMAGE" /etc/os-release \
    | sed -n 's/^VERSION_CODENAME=//p')
host_release=$(sed -n 's/^VERSION_CODENAME=//p' /etc/os-release)
if [ -z "$image_release" ] || [ "$image_release" != "$host_release" ]; then
    die "$IMAGE is Debian '$image_release' but this machine's apt serves '$host_release'"
fi

mkdir -p "$work/archives/partial"
apt_opts=(
    -o "Dir::State::status=$work/status"
    -o "Dir::Cache::archives=$work/archives"
    -o Debug::NoLocking=1
    -o APT::Install-Recommends=false
    -o APT::Install-Suggests=false
)
download() {
    DEBIAN_FRONTEND=noninteractive apt-get install --download-only --yes --quiet=2 \
        "${apt_opts[@]}" "$@" > "$work/apt.log" 2>&1
}
if ! download "$@"; then
    [ "$(id -u)" = 0 ] || { cat "$work/apt.log" >&2; die "apt-get failed (as root it would run apt-get update and retry)"; }
    log "apt could not fetch '$WANTED' (stale or missing lists?): apt-get update, then again"
    apt-get update -qq
    download "$@" || { cat "$work/apt.log" >&2; die "apt-get could not download '$WANTED'"; }
fi

rm -rf "$DEST"
mkdir -p "$DEST"
mv "$work"/archives/*.deb "$DEST"/
{
    echo "$IMAGE: $WANTED"
    (cd "$DEST" && ls -1 -- *.deb)
} > "$STAMP"
log "$DEST: $(($(wc -l < "$STAMP") - 1)) .deb files, $(du -sh "$DEST" | cut -f1), for '$WANTED'"
