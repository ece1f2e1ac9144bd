#!/usr/bin/env bash
# Makes the base images the agents run deployed services from, with no
# registry: a container of the SDP base image (make-base-image.sh) writes
# each rootfs as a tar (runtime-rootfs.sh), piped into `docker import`.
#   GO_TAG  (default sdp-go-base:1):  busybox + CA certificates, ~3 MB
#   PHP_TAG (default sdp-php-base:1): the same + PHP CLI and its libraries
# An image whose tag exists is left alone (scripts/dev.sh makes the same
# tags from the host's files; either works).
#
# Usage: make-runtime-images.sh [GO_TAG [PHP_TAG]]
# Env:   SDP_BASE_IMAGE (default sdp-base:bookworm; made if missing)
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"

GO_TAG="${1:-sdp-go-base:1}"
PHP_TAG="${2:-sdp-php-base:1}"
BASE="${SDP_BASE_IMAGE:-sdp-base:bookworm}"

make_one() { # kind tag cmd
  local kind="$1" tag="$2" cmd="$3" tmp_tag
  if docker image inspect "$tag" >/dev/null 2>&1; then
    echo "runtime image $tag exists"
    return
  fi
  "$here/make-base-image.sh" "$BASE"
  tmp_tag="${tag%%:*}:tmp-$$-$RANDOM"
  docker run --rm -i --network none "$BASE" /bin/bash -s -- "$kind" \
    <"$here/runtime-rootfs.sh" |
    docker import \
      --change 'ENV PATH=/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin' \
      --change "CMD $cmd" \
      - "$tmp_tag" >/dev/null
  docker tag "$tmp_tag" "$tag"
  docker rmi "$tmp_tag" >/dev/null
  echo "==> $tag made ($(docker image inspect --format '{{.Size}}' "$tag") bytes)"
}

make_one go "$GO_TAG" '["/bin/sh"]'
make_one php "$PHP_TAG" '["/usr/bin/php", "-a"]'
