#!/usr/bin/env bash
# Runs every test of SDP on real parts (nats-server, Docker, git, go).
# Installs what a fresh Debian machine lacks first.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib/deps.sh
source scripts/lib/schemathesis.sh
sdp_install_deps
# The contract test runs schemathesis against a live stack.
sdp_install_schemathesis

echo "==> building"
# The end-to-end tests start the real binaries.
cargo build --locked --workspace --bins

echo "==> testing"
if command -v cargo-nextest >/dev/null; then
  cargo nextest run --locked --workspace --no-fail-fast "$@"
else
  cargo test --locked --workspace --no-fail-fast "$@"
fi
