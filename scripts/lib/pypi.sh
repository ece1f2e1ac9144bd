# shellcheck shell=bash
# One pinned PyPI package in a venv of its own at the repo root (the test
# tools: schemathesis, nats-py). Sourced by scripts/lib/schemathesis.sh and
# scripts/lib/nats_py.sh.

# sdp_apt_install: apt-get as root, else the `sudo apt-get` line to run.
source "$(dirname "${BASH_SOURCE[0]}")/deps.sh"

# sdp_install_pypi_venv VENV_DIR PACKAGE VERSION: installs PACKAGE==VERSION
# into <repo>/VENV_DIR unless that version is there already.
sdp_install_pypi_venv() {
  local dir="$1" package="$2" version="$3" root venv
  root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
  venv="$root/$dir"
  if [ -x "$venv/bin/python" ] &&
    "$venv/bin/python" -c "import importlib.metadata as m, sys; sys.exit(m.version('$package') != '$version')" 2>/dev/null; then
    return 0
  fi
  # Debian's python3 makes venvs only with python3-venv (ensurepip).
  if ! command -v python3 >/dev/null; then
    sdp_apt_install python3 python3-venv || return 1
  elif ! python3 -c 'import ensurepip, venv' >/dev/null 2>&1; then
    sdp_apt_install python3-venv || return 1
  fi
  echo "==> installing $package $version into $dir/"
  rm -rf "$venv"
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check "$package==$version"
}
