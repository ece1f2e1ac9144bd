#!/usr/bin/env bash
# Deploys a release bundle to hosts over ssh: copies the tarball (scp), then
# runs its install.sh there with the host's roles, and removes the copy.
# ssh and scp run with the user's keys and -o BatchMode=yes (never a
# password prompt); nothing secret is passed in argv.
#
#   scripts/deploy.sh --bundle dist/sdp-<v>-linux-<arch>.tar.gz [ssh options]
#                     ROLES@[USER@]HOST ... [-- INSTALL_ARGS...]
#
#   ROLES        control, micro, gateway or a comma list (control,micro)
#   -i KEY       identity file            -p PORT   ssh port
#   -o OPTION    any ssh option (repeatable), e.g. -o UserKnownHostsFile=FILE
#   -F FILE      ssh config file
#   --sudo       run install.sh with sudo -n (for a non-root USER)
#   -- ARGS      passed on to install.sh (e.g. -- --root /srv/sdp --dry-run)
#
# Example: scripts/deploy.sh --bundle dist/sdp-0.1.0-linux-x86_64.tar.gz \
#            control@root@10.0.0.10 micro@root@10.0.0.11 gateway@root@10.0.0.12
set -euo pipefail

BUNDLE=""
SUDO=0
SSH_OPTS=(-o BatchMode=yes)
SCP_OPTS=(-o BatchMode=yes -q)
TARGETS=()
INSTALL_ARGS=()
while [ $# -gt 0 ]; do
  case "$1" in
    --bundle) BUNDLE="$2"; shift 2 ;;
    -i) SSH_OPTS+=(-i "$2"); SCP_OPTS+=(-i "$2"); shift 2 ;;
    -p) SSH_OPTS+=(-p "$2"); SCP_OPTS+=(-P "$2"); shift 2 ;;
    -o) SSH_OPTS+=(-o "$2"); SCP_OPTS+=(-o "$2"); shift 2 ;;
    -F) SSH_OPTS+=(-F "$2"); SCP_OPTS+=(-F "$2"); shift 2 ;;
    --sudo) SUDO=1; shift ;;
    --) shift; INSTALL_ARGS=("$@"); break ;;
    -h | --help) sed -n '2,20p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    -*) echo "error: unknown option '$1'" >&2; exit 2 ;;
    *) TARGETS+=("$1"); shift ;;
  esac
done
[ -n "$BUNDLE" ] && [ -f "$BUNDLE" ] || { echo "error: --bundle FILE (a .tar.gz from scripts/build.sh) is required" >&2; exit 2; }
[ ${#TARGETS[@]} -gt 0 ] || { echo "error: name at least one ROLES@HOST" >&2; exit 2; }
NAME=$(basename "$BUNDLE" .tar.gz)
[[ "$NAME" =~ ^sdp-[0-9A-Za-z._+~-]+$ ]] || { echo "error: '$BUNDLE' is not an sdp-<version>-linux-<arch>.tar.gz" >&2; exit 2; }

# One word for the remote shell: single-quoted, embedded quotes escaped.
quote() { printf "'%s'" "${1//\'/\'\\\'\'}"; }

deploy_one() { # ROLES HOST
  local roles="$1" host="$2" dir cmd arg
  echo "==> $host: roles $roles"
  dir=$(ssh "${SSH_OPTS[@]}" "$host" 'mktemp -d /tmp/sdp-deploy.XXXXXX')
  [[ "$dir" =~ ^/tmp/sdp-deploy\.[A-Za-z0-9]+$ ]] || { echo "error: $host: mktemp gave '$dir'" >&2; return 1; }
  # scp wants a [user@]host:path; IPv6 literals need brackets.
  scp "${SCP_OPTS[@]}" "$BUNDLE" "$host:$dir/$NAME.tar.gz"
  cmd="tar -xzf $dir/$NAME.tar.gz -C $dir && "
  [ "$SUDO" = 0 ] || cmd+="sudo -n "
  cmd+="$dir/$NAME/install.sh --role $(quote "$roles")"
  for arg in "${INSTALL_ARGS[@]}"; do cmd+=" $(quote "$arg")"; done
  local status=0
  ssh "${SSH_OPTS[@]}" "$host" "$cmd" || status=$?
  ssh "${SSH_OPTS[@]}" "$host" "rm -rf $dir" || true
  return "$status"
}

failed=0
for target in "${TARGETS[@]}"; do
  roles="${target%%@*}"
  host="${target#*@}"
  if [ "$roles" = "$target" ] || [ -z "$host" ] || ! [[ "$roles" =~ ^(control|micro|gateway)(,(control|micro|gateway))*$ ]]; then
    echo "error: '$target' is not ROLES@HOST (roles: control, micro, gateway, comma-separated)" >&2
    exit 2
  fi
  deploy_one "$roles" "$host" || { echo "error: $host: install failed" >&2; failed=1; }
done
exit "$failed"
