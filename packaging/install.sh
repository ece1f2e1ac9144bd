#!/usr/bin/env bash
# install.sh (at the top of an SDP release bundle): installs, upgrades or
# removes SDP on this host, for one or more roles:
#   control  sdp-control-plane (+ the nginx site, the sdp-nats unit and
#            /etc/nats configs for the NATS server beside it)
#   micro    sdp-agent-micro      gateway  sdp-agent-gateway
# Layout: /opt/sdp/<version>/ (this bundle) and /opt/sdp/current → <version>;
# /etc/sdp/<component>.toml and .env; /var/lib/sdp/<component>; units in
# /etc/systemd/system; /etc/nginx/sites-available/sdp.conf + enabled link.
#
#   install.sh --role control[,micro,gateway] [--role ...] [--nats-agent KIND:ID ...]
#              [--root DIR] [--dry-run]
#   install.sh --uninstall [--purge] [--root DIR] [--dry-run]
#
# --nats-agent KIND:ID (control role, repeatable: name every agent) writes
# /etc/nats/auth.conf with one NATS user per agent, `agent-<ID>`, allowed
# only its own heartbeat and commands (nats/gen-auth.sh); its password is
# $NATS_PW_AGENT_<ID> in /etc/nats/nats.env (ID upper-cased, - as _).
# Without it the sample agents micro:micro-1 and gateway:gateway-1 are used.
#
# Idempotent: a second run changes nothing and says so. A config you edited
# is never overwritten: the new sample lands beside it as <file>.new. An
# upgrade keeps /var/lib/sdp and restarts the services whose version or unit
# changed. --root DIR installs into DIR instead of / (tests, images): then no
# user is created, nothing is chowned and systemctl is not called; what would
# be done is printed instead. systemctl is also skipped when PID 1 is not
# systemd. --uninstall leaves configs and data; --purge removes them too.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
VERSION=$(cat "$HERE/VERSION")

usage() {
  sed -n '2,28p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'
  exit "${1:-0}"
}

ROOT=/
DRY=0
UNINSTALL=0
PURGE=0
ROLES=()
NATS_AGENTS=()
add_roles() { # comma list
  local role
  IFS=, read -r -a list <<<"$1"
  for role in "${list[@]}"; do
    case "$role" in
      control | micro | gateway) ;;
      *) echo "error: unknown role '$role' (control, micro, gateway)" >&2; exit 2 ;;
    esac
    [[ " ${ROLES[*]-} " == *" $role "* ]] || ROLES+=("$role")
  done
}
while [ $# -gt 0 ]; do
  case "$1" in
    --role) [ $# -ge 2 ] || usage 2; add_roles "$2"; shift 2 ;;
    --role=*) add_roles "${1#--role=}"; shift ;;
    --nats-agent) [ $# -ge 2 ] || usage 2; NATS_AGENTS+=("$2"); shift 2 ;;
    --nats-agent=*) NATS_AGENTS+=("${1#--nats-agent=}"); shift ;;
    --root) [ $# -ge 2 ] || usage 2; ROOT="$2"; shift 2 ;;
    --root=*) ROOT="${1#--root=}"; shift ;;
    --dry-run) DRY=1; shift ;;
    --uninstall) UNINSTALL=1; shift ;;
    --purge) UNINSTALL=1; PURGE=1; shift ;;
    -h | --help) usage 0 ;;
    *) echo "error: unknown argument '$1'" >&2; usage 2 ;;
  esac
done
case "$ROOT" in
  /*) ;;
  *) echo "error: --root must be an absolute path" >&2; exit 2 ;;
esac
R="${ROOT%/}" # "" for /, so "$R/etc/sdp" is /etc/sdp
ON_HOST=0
[ -n "$R" ] || ON_HOST=1
SYSTEMD=0
# /run/systemd/system exists only when PID 1 is systemd (sd_booted).
if [ "$ON_HOST" = 1 ] && [ -d /run/systemd/system ]; then SYSTEMD=1; fi
if [ "$ON_HOST" = 1 ] && [ "$DRY" = 0 ] && [ "$(id -u)" -ne 0 ]; then
  echo "error: installing into / needs root (sudo $0 ...), or use --root DIR" >&2
  exit 1
fi
if [ ${#NATS_AGENTS[@]} -gt 0 ] && [[ " ${ROLES[*]-} " != *" control "* ]]; then
  echo "error: --nats-agent writes the NATS server's auth.conf: use it with --role control" >&2
  exit 2
fi
# Refuse a bad KIND:ID before anything is installed.
if [ ${#NATS_AGENTS[@]} -gt 0 ] &&
  ! bash "$HERE/nats/gen-auth.sh" "${NATS_AGENTS[@]}" <"$HERE/nats/auth.conf" >/dev/null; then
  exit 2
fi
if [ "$UNINSTALL" = 0 ] && [ ${#ROLES[@]} -eq 0 ]; then
  echo "error: say which role(s) this host takes: --role control|micro|gateway" >&2
  exit 2
fi

CHANGES=0
change() { CHANGES=$((CHANGES + 1)); echo "  ${DRY_PREFIX:-}$*"; }
note() { echo "  $*"; }
DRY_PREFIX=""
[ "$DRY" = 0 ] || DRY_PREFIX="would: "
# Runs a command that changes the host (not the tree under $R): skipped with
# --dry-run or --root, printed instead.
host_run() {
  if [ "$DRY" = 1 ] || [ "$ON_HOST" = 0 ]; then
    note "would run: $*"
  else
    "$@"
  fi
}
systemctl_run() {
  if [ "$SYSTEMD" = 1 ] && [ "$DRY" = 0 ]; then
    systemctl "$@"
  else
    note "would run: systemctl $*"
  fi
}

# put SRC DEST MODE: copies SRC to DEST (atomically) unless it is already
# there with that content and mode. Returns 0 if it changed DEST.
put() {
  local src="$1" dest="$2" mode="$3"
  if [ -f "$dest" ] && [ ! -L "$dest" ] && cmp -s "$src" "$dest" &&
    [ "$(stat -c %a "$dest")" = "$mode" ]; then
    return 1
  fi
  change "install ${dest#"$R"}"
  if [ "$DRY" = 0 ]; then
    mkdir -p "$(dirname "$dest")"
    install -m "$mode" "$src" "$dest.sdp-tmp"
    mv -f "$dest.sdp-tmp" "$dest"
  fi
  return 0
}

# link TARGET PATH: a symlink PATH → TARGET (atomic replace).
link() {
  local target="$1" path="$2"
  if [ -L "$path" ] && [ "$(readlink "$path")" = "$target" ]; then return 1; fi
  change "link ${path#"$R"} -> $target"
  if [ "$DRY" = 0 ]; then
    mkdir -p "$(dirname "$path")"
    ln -sfn "$target" "$path.sdp-tmp"
    mv -Tf "$path.sdp-tmp" "$path"
  fi
  return 0
}

# config SRC DEST SHIPPED_BEFORE GROUP: installs a config the operator may
# edit (mode 0640, group GROUP on /). New: installed. Unedited (equal to what
# the previous version shipped): replaced. Edited: kept, the new one goes to
# DEST.new. Sets CONFIG_CHANGED=1 when DEST itself changed.
CONFIG_CHANGED=0
config() {
  local src="$1" dest="$2" before="$3" group="$4"
  CONFIG_CHANGED=0
  if [ ! -e "$dest" ]; then
    put "$src" "$dest" 640 && CONFIG_CHANGED=1
  elif cmp -s "$src" "$dest"; then
    :
  elif [ -f "$before" ] && cmp -s "$before" "$dest"; then
    put "$src" "$dest" "$(stat -c %a "$dest")" && CONFIG_CHANGED=1
  elif put "$src" "$dest.new" 640; then
    note "kept your edited ${dest#"$R"}; the new one is ${dest#"$R"}.new"
  fi
  if [ "$ON_HOST" = 1 ] && [ "$DRY" = 0 ] && getent group "$group" >/dev/null &&
    [ "$(stat -c %G "$dest")" != "$group" ]; then
    change "chgrp $group ${dest#"$R"}"
    chgrp "$group" "$dest"
  fi
  return 0
}

mkdir_owned() { # DIR MODE OWNER
  local dir="$1" mode="$2" owner="$3"
  if [ ! -d "$dir" ]; then
    change "create ${dir#"$R"}/"
    if [ "$DRY" = 0 ]; then mkdir -p -m "$mode" "$dir"; fi
  fi
  if [ "$ON_HOST" = 1 ] && [ "$DRY" = 0 ] && [ -d "$dir" ] &&
    [ "$(stat -c %U "$dir")" != "$owner" ]; then
    chown "$owner:$owner" "$dir"
    change "chown $owner ${dir#"$R"}/"
  fi
}

system_user() { # NAME HOME
  if [ "$ON_HOST" = 0 ]; then
    note "--root: user $1 not created (on / it would be: useradd --system $1)"
  elif ! getent passwd "$1" >/dev/null; then
    change "create system user $1"
    host_run useradd --system --user-group --home-dir "$2" --no-create-home \
      --shell /usr/sbin/nologin "$1"
  fi
}

component() { # role → component name
  case "$1" in
    control) echo control-plane ;;
    micro) echo agent-micro ;;
    gateway) echo agent-gateway ;;
  esac
}
env_prefix() { # component name → the prefix of the variables it reads
  case "$1" in
    control-plane) echo SDP_CONTROL_PLANE ;;
    *) echo SDP_AGENT ;;
  esac
}

uninstall() {
  echo "==> removing SDP from ${ROOT}"
  local unit name
  for unit in "$R"/etc/systemd/system/sdp-*.service; do
    [ -e "$unit" ] || continue
    name=$(basename "$unit")
    systemctl_run disable --now "$name"
    change "remove ${unit#"$R"}"
    [ "$DRY" = 1 ] || rm -f "$unit"
  done
  if [ "$CHANGES" -gt 0 ]; then systemctl_run daemon-reload; fi
  if [ -L "$R/etc/nginx/sites-enabled/sdp.conf" ]; then
    change "remove /etc/nginx/sites-enabled/sdp.conf"
    [ "$DRY" = 1 ] || rm -f "$R/etc/nginx/sites-enabled/sdp.conf"
    if [ "$SYSTEMD" = 1 ] && systemctl is-active -q nginx; then systemctl_run reload nginx; fi
  fi
  if [ -L "$R/usr/local/bin/sdp" ]; then
    change "remove /usr/local/bin/sdp"
    [ "$DRY" = 1 ] || rm -f "$R/usr/local/bin/sdp"
  fi
  if [ -d "$R/opt/sdp" ]; then
    change "remove /opt/sdp/"
    [ "$DRY" = 1 ] || rm -rf "$R/opt/sdp"
  fi
  if [ "$PURGE" = 1 ]; then
    local path
    for path in "$R/etc/sdp" "$R/var/lib/sdp" "$R"/etc/nginx/sites-available/sdp.conf* \
      "$R"/etc/nats/production.conf* "$R"/etc/nats/auth.conf*; do
      [ -e "$path" ] || continue
      change "purge ${path#"$R"}"
      [ "$DRY" = 1 ] || rm -rf "$path"
    done
    for name in sdp-control-plane sdp-agent-micro sdp-agent-gateway; do
      if [ "$ON_HOST" = 1 ] && getent passwd "$name" >/dev/null; then
        change "remove user $name"
        host_run userdel "$name"
      fi
    done
    note "left: /var/lib/nats (JetStream), /etc/nats/tls and nats.env, Docker images"
  else
    note "left: /etc/sdp (configs) and /var/lib/sdp (data); --purge removes them"
  fi
  if [ "$DRY" = 1 ]; then
    echo "sdp: would remove ($CHANGES change(s))"
  else
    echo "sdp: removed ($CHANGES change(s))"
  fi
}

# install_nats_auth SHIPPED_BEFORE: /etc/nats/auth.conf with a user per
# --nats-agent (the sample agents without one), kept if edited like any
# config. What was last generated is kept beside it (auth.conf.sdp-generated)
# so that adding an agent replaces an unedited file rather than leaving .new.
install_nats_auth() {
  local before="$1/nats/auth.conf" generated="$R/etc/nats/auth.conf.sdp-generated"
  if [ ${#NATS_AGENTS[@]} -eq 0 ]; then
    config "$HERE/nats/auth.conf" "$R/etc/nats/auth.conf" "$before" nats
    return 0
  fi
  local rendered
  rendered=$(mktemp)
  if ! bash "$HERE/nats/gen-auth.sh" "${NATS_AGENTS[@]}" <"$HERE/nats/auth.conf" >"$rendered"; then
    rm -f "$rendered"
    exit 2
  fi
  [ ! -f "$generated" ] || before="$generated"
  config "$rendered" "$R/etc/nats/auth.conf" "$before" nats
  if [ "$DRY" = 0 ] && cmp -s "$rendered" "$R/etc/nats/auth.conf" &&
    ! cmp -s "$rendered" "$generated"; then
    install -m 640 "$rendered" "$generated"
  fi
  rm -f "$rendered"
  note "NATS agent users: ${NATS_AGENTS[*]} (passwords in /etc/nats/nats.env; restart sdp-nats)"
}

# load_images: on an agent host, the images its containers run from. Each
# images/*.tar (saved by `scripts/build.sh --images`) is `docker load`ed
# unless Docker has its image; a sandbox resource image
# (sdp-resource-{postgres,mariadb,redis}:1) the bundle has not saved is made
# here by images/make-resource-images.sh from the host's Debian packages
# (postgresql, mariadb-server, redis-server), as the build host would.
load_images() {
  local tar image engine missing=()
  local docker_ok=0
  if [ "$ON_HOST" = 1 ] && [ "$DRY" = 0 ] && command -v docker >/dev/null &&
    docker info >/dev/null 2>&1; then docker_ok=1; fi
  for tar in "$HERE"/images/*.tar; do
    [ -e "$tar" ] || continue
    image=$(basename "$tar" .tar)
    image="${image%_*}:${image##*_}"
    if [ "$docker_ok" = 1 ]; then
      docker image inspect "$image" >/dev/null 2>&1 && continue
      change "docker load $image"
      docker load -q -i "$tar" >/dev/null
    else
      note "would run: docker load -i $tar ($image, unless present)"
    fi
  done
  for engine in postgres mariadb redis; do
    [ -e "$HERE/images/sdp-resource-${engine}_1.tar" ] || missing+=("$engine")
  done
  [ ${#missing[@]} -gt 0 ] || return 0
  if [ "$docker_ok" = 1 ]; then
    if ! bash "$HERE/images/make-resource-images.sh"; then
      note "warning: resource images not made (install postgresql, mariadb-server and redis-server, then run $HERE/images/make-resource-images.sh); sandbox resources fail until then"
    fi
  else
    note "would run: images/make-resource-images.sh (resource images not saved in this bundle: ${missing[*]})"
  fi
}

install_roles() {
  echo "==> sdp $VERSION, roles ${ROLES[*]}, into ${ROOT}${DRY_PREFIX:+ (dry run)}"
  [ "$ON_HOST" = 1 ] || note "--root: no users, no chown, no systemctl (printed instead)"
  [ "$ON_HOST" = 0 ] || [ "$SYSTEMD" = 1 ] || note "PID 1 is not systemd: systemctl is skipped"
  (cd "$HERE" && sha256sum --quiet --strict -c SHA256SUMS) || {
    echo "error: the bundle does not match its SHA256SUMS" >&2
    exit 1
  }

  # The binaries need only what a plain Debian 12 host has (libc, libgcc_s,
  # libssl3, zlib): say which package is missing before installing anything.
  local bin missing
  for bin in "$HERE"/bin/*; do
    missing=$(ldd "$bin" 2>/dev/null | awk '/not found/ {print $1}' | tr '\n' ' ')
    if [ -n "$missing" ]; then
      echo "error: $(basename "$bin") needs ${missing}(apt-get install libssl3 zlib1g)" >&2
      exit 1
    fi
  done

  local opt="$R/opt/sdp" previous="" rel
  if [ -L "$opt/current" ]; then previous=$(readlink "$opt/current"); fi
  # The bundle itself, as /opt/sdp/<version>.
  while IFS= read -r -d '' rel; do
    rel="${rel#./}"
    put "$HERE/$rel" "$opt/$VERSION/$rel" "$(stat -c %a "$HERE/$rel")" || true
  done < <(cd "$HERE" && find . -type f -print0 | sort -z)
  link "$VERSION" "$opt/current" || true
  link /opt/sdp/current/bin/sdp "$R/usr/local/bin/sdp" || true
  [ -z "$previous" ] || [ "$previous" = "$VERSION" ] || note "upgraded from $previous"
  local before="$opt/${previous:-none}"

  local role name restart=() enable=() unit_changed=0 site_changed
  for role in "${ROLES[@]}"; do
    name=$(component "$role")
    system_user "sdp-$name" "/var/lib/sdp/$name"
    mkdir_owned "$R/var/lib/sdp" 755 root
    mkdir_owned "$R/var/lib/sdp/$name" 750 "sdp-$name"
    config "$HERE/etc/$name.sample.toml" "$R/etc/sdp/$name.toml" \
      "$before/etc/$name.sample.toml" "sdp-$name"
    # Secrets (<prefix>__NATS__PASSWORD=...) go here: root only, read by
    # systemd. The binary ignores variables outside its prefix: say so
    # about any an older release's file still sets.
    local prefix
    prefix=$(env_prefix "$name")
    if [ ! -e "$R/etc/sdp/$name.env" ]; then
      change "create /etc/sdp/$name.env (0600: put ${prefix}__NATS__PASSWORD=... here)"
      [ "$DRY" = 1 ] || install -m 600 /dev/null "$R/etc/sdp/$name.env"
    elif grep -q "^SDP_" "$R/etc/sdp/$name.env" &&
      grep "^SDP_" "$R/etc/sdp/$name.env" | grep -qv "^${prefix}__"; then
      note "warning: /etc/sdp/$name.env sets SDP_* variables sdp-$name ignores: it reads ${prefix}__<SECTION>__<KEY> (e.g. ${prefix}__NATS__PASSWORD)"
    fi
    local unit_name="sdp-$name.service"
    if put "$HERE/systemd/$unit_name" "$R/etc/systemd/system/$unit_name" 644; then
      unit_changed=1
      restart+=("$unit_name")
    elif [ -n "$previous" ] && [ "$previous" != "$VERSION" ]; then
      restart+=("$unit_name")
    fi
    enable+=("$unit_name")
    if [ "$role" = control ]; then
      if put "$HERE/systemd/sdp-nats.service" "$R/etc/systemd/system/sdp-nats.service" 644; then
        unit_changed=1
      fi
      system_user nats /var/lib/nats
      config "$HERE/nats/production.conf" "$R/etc/nats/production.conf" \
        "$before/nats/production.conf" nats
      install_nats_auth "$before"
      config "$HERE/nginx/sdp.conf" "$R/etc/nginx/sites-available/sdp.conf" \
        "$before/nginx/sdp.conf" root
      site_changed=$CONFIG_CHANGED
      if link ../sites-available/sdp.conf "$R/etc/nginx/sites-enabled/sdp.conf"; then
        site_changed=1
      fi
      if [ "$site_changed" = 1 ]; then
        if [ "$SYSTEMD" = 1 ] && command -v nginx >/dev/null && systemctl is-active -q nginx; then
          host_run nginx -t -q
          systemctl_run reload nginx
        else
          note "reload nginx once the site is edited: nginx -t && systemctl reload nginx"
        fi
      fi
    fi
  done

  if [[ " ${ROLES[*]} " == *" micro "* || " ${ROLES[*]} " == *" gateway "* ]]; then
    load_images
  fi
  if [ "$unit_changed" = 1 ]; then systemctl_run daemon-reload; fi
  local unit
  for unit in "${enable[@]}"; do
    if [ "$SYSTEMD" = 1 ] && [ "$DRY" = 0 ]; then
      if ! systemctl is-enabled -q "$unit"; then
        change "enable $unit"
        systemctl enable -q "$unit"
      fi
    elif [ "$unit_changed" = 1 ]; then
      note "would run: systemctl enable $unit"
    fi
  done
  if [ -z "$previous" ]; then
    for unit in "${enable[@]}"; do
      name=${unit#sdp-}
      note "first install: edit /etc/sdp/${name%.service}.toml (and .env), then: systemctl start $unit"
    done
    restart=()
  fi
  for unit in "${restart[@]}"; do
    if [ "$SYSTEMD" = 1 ] && [ "$DRY" = 0 ]; then
      if systemctl is-active -q "$unit"; then
        change "restart $unit"
        systemctl restart "$unit"
      else
        note "$unit is not running: systemctl start $unit"
      fi
    else
      note "would restart: $unit"
    fi
  done

  if [ "$CHANGES" -eq 0 ]; then
    echo "sdp $VERSION: already installed, nothing changed"
  else
    if [ "$DRY" = 1 ]; then
      echo "sdp $VERSION: would make $CHANGES change(s)"
    else
      echo "sdp $VERSION: $CHANGES change(s)"
    fi
  fi
}

if [ "$UNINSTALL" = 1 ]; then uninstall; else install_roles; fi
