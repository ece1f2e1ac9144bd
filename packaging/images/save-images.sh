#!/usr/bin/env bash
# Writes images as tar files for `docker load` on offline hosts, one file
# per image (`sdp-go-base_1.tar`). With no IMAGE: the deployed services'
# base images, the build image and the sandbox resources' images
# (sdp-go-base:1, sdp-php-base:1, sdp-build:1,
# sdp-resource-{postgres,mariadb,redis}:1), which the agents' Docker hosts
# need, each made first when missing (install.sh loads them). Naming images saves those instead of the default list (add
# the defaults to the names to keep them, e.g. sdp-base:bookworm for hosts
# that run the compose stack); a named image must exist already.
#
# Usage: save-images.sh OUT_DIR [IMAGE...]
# On a host: docker load -i sdp-go-base_1.tar
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"

out="${1:?usage: save-images.sh OUT_DIR [IMAGE...]}"
shift
images=("$@")
if [ ${#images[@]} -eq 0 ]; then
  "$here/make-runtime-images.sh"
  "$here/make-build-image.sh"
  "$here/make-resource-images.sh"
  images=(sdp-go-base:1 sdp-php-base:1 sdp-build:1
    sdp-resource-postgres:1 sdp-resource-mariadb:1 sdp-resource-redis:1)
fi
mkdir -p "$out"
for image in "${images[@]}"; do
  if ! docker image inspect "$image" >/dev/null 2>&1; then
    echo "error: image $image is missing (make-base-image.sh, make-runtime-images.sh, make-build-image.sh, make-resource-images.sh)" >&2
    exit 1
  fi
  file="$out/$(printf '%s' "$image" | tr ':/' '__').tar"
  docker save -o "$file.part" "$image"
  mv -- "$file.part" "$file"
  echo "$file ($(du -h "$file" | cut -f1))"
done
