# shellcheck shell=bash
# Installs nats-py (PyPI, pinned) into .venv-nats-py/ at the repo root, for
# the stranger's agent of the bus-contract tests
# (control-plane/tests/fixtures/stranger_agent.py, run by
# control-plane/tests/e2e/stranger_agent.rs). Sourced by test.sh; run alone
# with `bash scripts/lib/nats_py.sh`.

SDP_NATS_PY_VERSION=2.16.0
# sdp_apt_install: apt-get as root, else the `sudo apt-get` line to run.
source "$(dirname "${BASH_SOURCE[0]}")/deps.sh"

sdp_install_nats_py() {
  local root venv
  root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
  venv="$root/.venv-nats-py"
  if [ -x "$venv/bin/python" ] &&
    "$venv/bin/python" -c "import importlib.metadata as m, sys; sys.exit(m.version('nats-py') != '$SDP_NATS_PY_VERSION')" 2>/dev/null; then
    return 0
  fi
  # Debian's python3 makes venvs only with python3-venv (ensurepip).
  if ! command -v python3 >/dev/null; then
    sdp_apt_install python3 python3-venv || return 1
  elif ! python3 -c 'import ensurepip, venv' >/dev/null 2>&1; then
    sdp_apt_install python3-venv || return 1
  fi
  echo "==> installing nats-py $SDP_NATS_PY_VERSION into .venv-nats-py/"
  rm -rf "$venv"
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check \
    "nats-py==$SDP_NATS_PY_VERSION"
}

if [ "${BASH_SOURCE[0]}" = "$0" ]; then
  set -euo pipefail
  sdp_install_nats_py
fi
