# shellcheck shell=bash
# Installs nats-py (PyPI, pinned) into .venv-nats-py/ at the repo root, for
# the stranger's agent of the bus-contract tests
# (control-plane/tests/fixtures/stranger_agent.py, run by
# control-plane/tests/e2e/stranger_agent.rs). Sourced by test.sh; run alone
# with `bash scripts/lib/nats_py.sh`.

SDP_NATS_PY_VERSION=2.16.0
source "$(dirname "${BASH_SOURCE[0]}")/pypi.sh"

sdp_install_nats_py() {
  sdp_install_pypi_venv .venv-nats-py nats-py "$SDP_NATS_PY_VERSION"
}

if [ "${BASH_SOURCE[0]}" = "$0" ]; then
  set -euo pipefail
  sdp_install_nats_py
fi
