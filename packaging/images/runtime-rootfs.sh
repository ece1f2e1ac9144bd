#!/bin/bash
# Runs INSIDE a container of the SDP base image (make-runtime-images.sh
# pipes it in): writes to stdout a tar of the rootfs of a deployed
# service's base image, cut out of the base's Debian files.
#   go:  busybox (static) and its applets, /etc/passwd and group, CA
#        certificates, /tmp: enough for a static Go binary (CGO_ENABLED=0).
#   php: the same plus the PHP CLI (the real file behind Debian's
#        alternatives) at /usr/bin/php and every library ldd lists; PHP
#        runs on its compiled-in defaults (no ini file), `php -S` works.
#   build: the php rootfs plus the shared extensions composer uses (with
#        their ini files and libraries), php.ini and Debian's composer
#        (/usr/bin/composer, /usr/share/php): the image agents build in.
#        Go is not in it: agents mount the host's GOROOT read-only.
# Usage: runtime-rootfs.sh go|php|build
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
  php | build)
    php="$(readlink -f /usr/bin/php)"
    copy "$php"
    [ "$php" = /usr/bin/php ] || ln -sf "$php" "$root/usr/bin/php"
    # `libm.so.6 => /lib/x86_64-linux-gnu/libm.so.6 (0x…)` or
    # `/lib64/ld-linux-x86-64.so.2 (0x…)`; linux-vdso has no file.
    ldd "$php" | awk '{ for (i = 1; i <= NF; i++) if ($i ~ /^\//) { print $i; break } }' |
      while read -r lib; do copy "$lib"; done
    # PHP's date functions warn at every start without a zone file.
    copy /usr/share/zoneinfo/UTC
    ;;&
  build)
    ext_dir="$(php -n -r 'echo PHP_EXTENSION_DIR;')"
    version="$(php -n -r 'echo PHP_MAJOR_VERSION.".".PHP_MINOR_VERSION;')"
    conf_d="/etc/php/$version/cli/conf.d"
    mkdir -p "$root$conf_d"
    # intl's Normalizer renders composer's errors.
    for ext in ctype iconv mbstring phar tokenizer posix fileinfo intl zip curl; do
      [ -f "$ext_dir/$ext.so" ] || continue
      copy "$ext_dir/$ext.so"
      ldd "$ext_dir/$ext.so" | awk '{ for (i = 1; i <= NF; i++) if ($i ~ /^\//) { print $i; break } }' |
        while read -r lib; do copy "$lib"; done
      echo "extension=$ext.so" >"$root$conf_d/20-$ext.ini"
    done
    copy "/etc/php/$version/cli/php.ini"
    copy /usr/bin/composer
    find /usr/share/php -type f | while read -r file; do copy "$file"; done
    ;;
  php) ;;
  *) echo "unknown kind $kind (go|php|build)" >&2; exit 2 ;;
esac

tar --numeric-owner -C "$root" -c .
