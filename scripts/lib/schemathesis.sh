# shellcheck shell=bash
# Installs schemathesis (PyPI, pinned) into .venv-schemathesis/ at the
# repo root, for the contract test (control-plane/tests/e2e/contract.rs).
# Sourced by test.sh; run alone with `bash scripts/lib/schemathesis.sh`.

SDP_SCHEMATHESIS_VERSION=4.32.5
source "$(dirname "${BASH_SOURCE[0]}")/pypi.sh"

sdp_install_schemathesis() {
  sdp_install_pypi_venv .venv-schemathesis schemathesis "$SDP_SCHEMATHESIS_VERSION"
}

if [ "${BASH_SOURCE[0]}" = "$0" ]; then
  set -euo pipefail
  sdp_install_schemathesis
fi
