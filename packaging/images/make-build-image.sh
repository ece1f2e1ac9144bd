#!/usr/bin/env bash
# Makes the image the agents build in, with no registry: a container of the
# SDP base image (make-base-image.sh) writes the rootfs as a tar
# (runtime-rootfs.sh build), piped into `docker import`. It holds busybox,
# the PHP CLI with the extensions composer uses, and Debian's composer
# (~25 MB); Go is not in it — the agents mount the host's Go toolchain
# (build.goroot, default the GOROOT of `go` on the agent's PATH)
# read-only. Does nothing when the tag exists.
#
# Usage: make-build-image.sh [TAG]        (default sdp-build:1, the agents'
#                                          default build.image)
# Env:   SDP_BASE_IMAGE (default sdp-base:bookworm; made if missing)
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"

TAG="${1:-sdp-build:1}"
BASE="${SDP_BASE_IMAGE:-sdp-base:bookworm}"

if docker image inspect "$TAG" >/dev/null 2>&1; then
  echo "build image $TAG exists"
  exit 0
fi
"$here/make-base-image.sh" "$BASE"
tmp_tag="${TAG%%:*}:tmp-$$-$RANDOM"
docker run --rm -i --network none "$BASE" /bin/bash -s -- build \
  <"$here/runtime-rootfs.sh" |
  docker import \
    --change 'ENV PATH=/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin' \
    --change 'CMD ["/bin/sh"]' \
    - "$tmp_tag" >/dev/null
docker tag "$tmp_tag" "$TAG"
docker rmi "$tmp_tag" >/dev/null
echo "==> $TAG made ($(docker image inspect --format '{{.Size}}' "$TAG") bytes)"
