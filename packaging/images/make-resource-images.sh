#!/usr/bin/env bash
# Makes the base images agents run sandbox resources from, with no
# registry: resource-rootfs.sh cuts each rootfs out of Debian's packages
# (postgresql, mariadb-server, redis-server installed where it runs),
# piped into `docker import`. Each runs as uid 999 with
# /usr/local/bin/sdp-resource. An image whose tag exists is left alone.
#
# Usage: make-resource-images.sh [PREFIX]   (default sdp-resource-; tags
#        PREFIX{postgres,mariadb,redis}:1)
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
prefix="${1:-sdp-resource-}"

for engine in postgres mariadb redis; do
  tag="${prefix}${engine}:1"
  if docker image inspect "$tag" >/dev/null 2>&1; then
    echo "resource image $tag exists"
    continue
  fi
  tmp_tag="${prefix}${engine}:tmp-$$-$RANDOM"
  bash "$here/resource-rootfs.sh" "$engine" |
    docker import \
      --change 'ENV PATH=/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin' \
      --change 'USER 999:999' \
      --change 'CMD ["/usr/local/bin/sdp-resource"]' \
      - "$tmp_tag" >/dev/null
  docker tag "$tmp_tag" "$tag"
  docker rmi "$tmp_tag" >/dev/null
  echo "==> $tag made ($(docker image inspect --format '{{.Size}}' "$tag") bytes)"
done
