#!/usr/bin/env bash
# Fetch Debian's Intel GPU compute runtime (intel-opencl-icd, the OpenCL ICD that OpenVINO's GPU
# plugin loads, and what it depends on) as .deb files into docker/agent-gpu/debs/ (git-ignored),
# for the offline build of the GPU agent image (docker/agent-gpu/Dockerfile):
#
#   bash .ci/gpu-debs.sh [PACKAGE...]      # extra Debian packages to add, e.g. NPU driver deps
#
# Resolved against the dpkg status of the base image the ovbench image is built on
# (OVBENCH_BASE_IMAGE, default ovbench-base:bookworm; any Debian bookworm image), so only what
# that image lacks is fetched. Idempotent (.ci/debs-fetch.sh). Intel's NPU .debs, which Debian
# does not have, go into docker/agent-gpu/extra-debs/ by hand: docs/fleet-containers.md.
set -euo pipefail
cd "$(dirname "$0")/.."
started=$SECONDS
bash .ci/debs-fetch.sh "${OVBENCH_BASE_IMAGE:-ovbench-base:bookworm}" docker/agent-gpu/debs \
    intel-opencl-icd "$@"
printf '[gpu-debs] took %s s\n' "$((SECONDS - started))" >&2
