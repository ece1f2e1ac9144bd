#!/usr/bin/env bash
# Makes the Debian base image of the SDP images (control plane, agents,
# NATS, demo git server) with no registry: `debootstrap --variant=minbase
# bookworm` into a temp dir, with what the agents run on their host side
# (go, php, composer, git) and nats-server, then `docker import`.
# Does nothing when the tag exists.
#
# Usage: make-base-image.sh [TAG]        (default sdp-base:bookworm)
# Env:   SDP_DEBIAN_MIRROR (default http://deb.debian.org/debian)
# Needs: root, debootstrap, docker.
set -euo pipefail

TAG="${1:-sdp-base:bookworm}"
MIRROR="${SDP_DEBIAN_MIRROR:-http://deb.debian.org/debian}"
# One image for every component: the layers are shared, so the stack
# costs one download and one import, and each SDP image adds only its
# binary. busybox-static and libc-bin (ldd) let make-runtime-images.sh
# cut the deployed services' small images out of this one.
PACKAGES=ca-certificates,git,golang-go,php-cli,php-intl,composer,nats-server,busybox-static,libssl3,tini

if docker image inspect "$TAG" >/dev/null 2>&1; then
  echo "base image $TAG exists"
  exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
  echo "error: debootstrap needs root: run as root (sudo $0)" >&2
  exit 1
fi
if ! command -v debootstrap >/dev/null; then
  echo "error: debootstrap is missing: apt-get install -y debootstrap" >&2
  exit 1
fi

work="$(mktemp -d /var/tmp/sdp-base.XXXXXX)"
trap 'rm -rf -- "$work"' EXIT
rootfs="$work/rootfs"

echo "==> debootstrap bookworm into $rootfs ($MIRROR)"
started=$SECONDS
debootstrap --variant=minbase --include="$PACKAGES" bookworm "$rootfs" "$MIRROR" \
  >"$work/debootstrap.log" 2>&1 || {
  tail -n 30 "$work/debootstrap.log" >&2
  echo "error: debootstrap failed (log above)" >&2
  exit 1
}
# What a container needs no copy of: package lists and caches, docs.
rm -rf -- "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/* \
  "$rootfs"/usr/share/doc/* "$rootfs"/usr/share/man/* "$rootfs"/usr/share/locale/*
echo "==> debootstrap took $((SECONDS - started)) s"

# Imported under a temporary tag, then tagged: a concurrent reader never
# sees a half-made image under the final name.
tmp_tag="${TAG%%:*}:tmp-$$-$RANDOM"
tar --numeric-owner -C "$rootfs" -c . |
  docker import \
    --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    --change 'ENV LANG=C.UTF-8' \
    --change 'CMD ["/bin/bash"]' \
    - "$tmp_tag" >/dev/null
docker tag "$tmp_tag" "$TAG"
docker rmi "$tmp_tag" >/dev/null
echo "==> $TAG made in $((SECONDS - started)) s ($(docker image inspect --format '{{.Size}}' "$TAG") bytes)"
