#!/bin/bash
# Runs INSIDE a container of the SDP base image (make-runtime-images.sh
# pipes it in): writes to stdout a tar of the rootfs of a deployed
# service's base image, cut out of the base's Debian files.
#   go:  busybox (static) and its applets, /etc/passwd and group, CA
#        certificates, /tmp: enough for a static Go binary (CGO_ENABLED=0).
#   php: the same plus the PHP CLI (the real file behind Debian's
#        alternatives) at /usr/bin/php and every library ldd lists; PHP
#        runs on its compiled-in defaults (no ini file), `php -S` works.
# Usage: runtime-rootfs.sh go|php
set -euo pipefail

kind="${1:?usage: runtime-rootfs.sh go|php}"
root="$(mktemp -d)"

mkdir -p "$root"/{bin,etc/ssl/certs,root,proc,sys,dev,usr/bin,sbin,var}
install -d -m 1777 "$root/tmp"
install -m 0755 /bin/busybox "$root/bin/busybox"
for applet in $(/bin/busybox --list); do
  [ "$applet" = busybox ] || ln -s busybox "$root/bin/$applet"
done
printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n' \
  >"$root/etc/passwd"
printf 'root:x:0:\nnogroup:x:65534:\n' >"$root/etc/group"
cp /etc/ssl/certs/ca-certificates.crt "$root/etc/ssl/certs/"

copy() { # host file → same path in the rootfs (following symlinks)
  mkdir -p "$root$(dirname "$1")"
  [ -e "$root$1" ] || cp -L "$1" "$root$1"
}

case "$kind" in
  go) ;;
  php)
    php="$(readlink -f /usr/bin/php)"
    copy "$php"
    [ "$php" = /usr/bin/php ] || ln -sf "$php" "$root/usr/bin/php"
    # `libm.so.6 => /lib/x86_64-linux-gnu/libm.so.6 (0x…)` or
    # `/lib64/ld-linux-x86-64.so.2 (0x…)`; linux-vdso has no file.
    ldd "$php" | awk '{ for (i = 1; i <= NF; i++) if ($i ~ /^\//) { print $i; break } }' |
      while read -r lib; do copy "$lib"; done
    # PHP's date functions warn at every start without a zone file.
    copy /usr/share/zoneinfo/UTC
    ;;
  *) echo "unknown kind $kind (go|php)" >&2; exit 2 ;;
esac

tar --numeric-owner -C "$root" -c .
