# shellcheck shell=bash
# Installs schemathesis (PyPI, pinned) into .venv-schemathesis/ at the
# repo root, for the contract test (control-plane/tests/e2e/contract.rs).
# Sourced by test.sh; run alone with `bash scripts/lib/schemathesis.sh`.

SDP_SCHEMATHESIS_VERSION=4.32.5
# sdp_apt_install: apt-get as root, else the `sudo apt-get` line to run.
source "$(dirname "${BASH_SOURCE[0]}")/deps.sh"

sdp_install_schemathesis() {
  local root venv
  root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
  venv="$root/.venv-schemathesis"
  if [ -x "$venv/bin/schemathesis" ] &&
    "$venv/bin/schemathesis" --version 2>/dev/null | grep -qF "$SDP_SCHEMATHESIS_VERSION"; then
    return 0
  fi
  # Debian's python3 makes venvs only with python3-venv (ensurepip).
  if ! command -v python3 >/dev/null; then
    sdp_apt_install python3 python3-venv || return 1
  elif ! python3 -c 'import ensurepip, venv' >/dev/null 2>&1; then
    sdp_apt_install python3-venv || return 1
  fi
  echo "==> installing schemathesis $SDP_SCHEMATHESIS_VERSION into .venv-schemathesis/"
  rm -rf "$venv"
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check \
    "schemathesis==$SDP_SCHEMATHESIS_VERSION"
  "$venv/bin/schemathesis" --version
}

if [ "${BASH_SOURCE[0]}" = "$0" ]; then
  set -euo pipefail
  sdp_install_schemathesis
fi
