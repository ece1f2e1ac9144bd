#!/bin/bash
# Writes to stdout a tar of the rootfs of a sandbox resource's base image,
# cut out of Debian's packages installed where it runs (the host for the
# tests, a container of the SDP base image for make-resource-images.sh):
#   postgres: postgresql-15's server, initdb, psql and pg_isready
#   mariadb:  mariadb-server's mariadbd, the mariadb client and the
#             bootstrap SQL of /usr/share/mysql
#   redis:    redis-server and redis-cli
# Each gets busybox (static), every library ldd lists, a user `sdp`
# (uid/gid 999) the server runs as, /data (owned by it, mode 0700: a new
# named volume mounted there takes that owner) and the start script
# /usr/local/bin/sdp-resource, which makes the database on first start
# from $SDP_RESOURCE_PASSWORD (user `sdp`, database `app`) and then runs
# the server in the foreground. The password is never written to a file
# that stays: postgres reads it from a file removed right after initdb,
# mariadb from its bootstrap's stdin, redis from a config file in /tmp.
# Usage: resource-rootfs.sh postgres|mariadb|redis
set -euo pipefail

engine="${1:?usage: resource-rootfs.sh postgres|mariadb|redis}"
root="$(mktemp -d)"
trap 'rm -rf "$root"' EXIT

mkdir -p "$root"/{bin,etc,root,proc,sys,dev,usr/bin,usr/sbin,usr/local/bin,sbin,var/run}
install -d -m 1777 "$root/tmp"
install -d -m 0700 -o 999 -g 999 "$root/data"
install -m 0755 /bin/busybox "$root/bin/busybox"
for applet in $(/bin/busybox --list); do
  [ "$applet" = busybox ] || ln -sf busybox "$root/bin/$applet"
done
printf 'root:x:0:0:root:/root:/bin/sh\nsdp:x:999:999:sdp:/data:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n' \
  >"$root/etc/passwd"
printf 'root:x:0:\nsdp:x:999:\nnogroup:x:65534:\n' >"$root/etc/group"

copy() { # host file → same path in the rootfs (following symlinks)
  mkdir -p "$root$(dirname "$1")"
  [ -e "$root$1" ] || cp -L "$1" "$root$1"
}
copy_with_libs() { # a binary or library and every library ldd lists
  copy "$1"
  # `libm.so.6 => /lib/x86_64-linux-gnu/libm.so.6 (0x…)` or
  # `/lib64/ld-linux-x86-64.so.2 (0x…)`; linux-vdso has no file.
  ldd "$1" 2>/dev/null | awk '{ for (i = 1; i <= NF; i++) if ($i ~ /^\//) { print $i; break } }' |
    while read -r lib; do copy "$lib"; done
}
copy_tree() { # a directory, as it is
  mkdir -p "$root$(dirname "$1")"
  cp -a "$1" "$root$1"
}
copy /usr/share/zoneinfo/UTC
ln -sf /usr/share/zoneinfo/UTC "$root/etc/localtime"
start="$root/usr/local/bin/sdp-resource"

case "$engine" in
  postgres)
    pg="$(ls -d /usr/lib/postgresql/*/ | sort -V | tail -1)"
    pg="${pg%/}"
    for bin in postgres initdb psql pg_isready; do
      copy_with_libs "$pg/bin/$bin"
      ln -sf "$pg/bin/$bin" "$root/usr/local/bin/$bin"
    done
    # The server's own modules (encodings, plpgsql), without the JIT,
    # which would pull in LLVM.
    for lib in "$pg"/lib/*.so; do
      case "$lib" in */llvmjit.so) continue ;; esac
      copy_with_libs "$lib"
    done
    copy_tree "/usr/share/postgresql/$(basename "$pg")"
    cat >"$start" <<EOF
#!/bin/sh
set -eu
export PATH="$pg/bin:\$PATH" TZ=UTC
if [ ! -s /data/pgdata/PG_VERSION ]; then
  umask 077
  printf '%s\n' "\$SDP_RESOURCE_PASSWORD" >/tmp/pw
  initdb -D /data/pgdata -U sdp --pwfile=/tmp/pw -E UTF8 --no-locale \\
    --auth-local=trust --auth-host=scram-sha-256 >/dev/null
  rm -f /tmp/pw
  echo 'host all all all scram-sha-256' >>/data/pgdata/pg_hba.conf
  echo 'CREATE DATABASE app;' | postgres --single -D /data/pgdata postgres >/dev/null
fi
unset SDP_RESOURCE_PASSWORD
exec postgres -D /data/pgdata -c listen_addresses='*' -c unix_socket_directories=/tmp
EOF
    ;;
  mariadb)
    copy_with_libs "$(readlink -f /usr/sbin/mariadbd)"
    [ -e "$root/usr/sbin/mariadbd" ] || ln -sf "$(readlink -f /usr/sbin/mariadbd)" "$root/usr/sbin/mariadbd"
    copy_with_libs "$(readlink -f /usr/bin/mariadb)"
    [ -e "$root/usr/bin/mariadb" ] || ln -sf "$(readlink -f /usr/bin/mariadb)" "$root/usr/bin/mariadb"
    copy_tree /usr/share/mysql
    cat >"$start" <<'EOF'
#!/bin/sh
set -eu
opts="--datadir=/data/mysql --socket=/tmp/mysqld.sock --pid-file=/tmp/mysqld.pid --skip-log-bin --plugin-dir=/nonexistent"
if [ ! -d /data/mysql/mysql ]; then
  mkdir -p /data/mysql
  {
    echo "create database if not exists mysql;"
    echo "use mysql;"
    echo "SET @auth_root_socket=NULL;"
    cat /usr/share/mysql/mysql_system_tables.sql /usr/share/mysql/mysql_performance_tables.sql \
      /usr/share/mysql/mysql_system_tables_data.sql
    echo "FLUSH PRIVILEGES;"
    echo "CREATE DATABASE app;"
    echo "CREATE USER 'sdp'@'%' IDENTIFIED BY '$SDP_RESOURCE_PASSWORD';"
    echo "CREATE USER 'sdp'@'localhost' IDENTIFIED BY '$SDP_RESOURCE_PASSWORD';"
    echo "GRANT ALL ON *.* TO 'sdp'@'%' WITH GRANT OPTION;"
    echo "GRANT ALL ON *.* TO 'sdp'@'localhost' WITH GRANT OPTION;"
  } | mariadbd $opts --bootstrap --log-warnings=0 --enforce-storage-engine="" >/tmp/bootstrap.log 2>&1 ||
    { tail -20 /tmp/bootstrap.log >&2; exit 1; }
fi
unset SDP_RESOURCE_PASSWORD
exec mariadbd $opts --port=3306 --bind-address=0.0.0.0 --skip-name-resolve
EOF
    ;;
  redis)
    copy_with_libs /usr/bin/redis-server
    copy_with_libs "$(readlink -f /usr/bin/redis-cli)"
    [ -e "$root/usr/bin/redis-cli" ] || ln -sf "$(readlink -f /usr/bin/redis-cli)" "$root/usr/bin/redis-cli"
    cat >"$start" <<'EOF'
#!/bin/sh
set -eu
umask 077
# The config file carries the password: in the container's /tmp, never in
# the volume or an argv.
printf 'bind 0.0.0.0\nport 6379\ndir /data\nappendonly yes\nprotected-mode no\nrequirepass %s\n' \
  "$SDP_RESOURCE_PASSWORD" >/tmp/redis.conf
unset SDP_RESOURCE_PASSWORD
exec redis-server /tmp/redis.conf
EOF
    ;;
  *) echo "unknown engine $engine (postgres|mariadb|redis)" >&2; exit 2 ;;
esac
chmod 0755 "$start"

tar --numeric-owner -C "$root" -c .
