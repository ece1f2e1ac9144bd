#!/usr/bin/env bash
# Runs every test of SDP on real parts (nats-server, Docker, git, go,
# chromium, nginx, sshd) with cargo-nextest, whose time limits
# (.config/nextest.toml) stop a stuck test. Installs what a fresh Debian
# machine lacks first (scripts/lib/deps.sh): Debian packages (root needed;
# as another user it prints the `sudo apt-get install` line), then
# cargo-nextest, cargo-cycles and schemathesis as this user. CI runs it
# (.ci/run).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib/deps.sh
source scripts/lib/schemathesis.sh
source scripts/lib/nats_py.sh
source scripts/lib/cycles.sh
sdp_install_run_deps build
sdp_install_test_deps
# A second Go (1.22, Debian backports) for the toolchain-choice tests.
source scripts/lib/go_toolchains.sh
sdp_install_go_toolchains
# The contract test runs schemathesis against a live stack.
sdp_install_schemathesis
# The stranger's agent (bus contract tests) is Python on nats-py.
sdp_install_nats_py
# No `cargo test` fallback: without nextest no test has a time limit, and
# one stuck test would hold CI until its own clock runs out.
if ! command -v cargo-nextest >/dev/null; then
  echo "==> installing cargo-nextest (crates.io) into ~/.cargo/bin"
  cargo install --locked cargo-nextest
fi
# The module-cycle check (agentlib, control-plane): a minute or two to install,
# seconds to run, so it goes first.
sdp_install_cargo_cycles
sdp_check_cycle_check_fails
sdp_check_module_cycles

echo "==> building"
# The end-to-end tests start the real binaries. `--tests` too, in the same
# command: cargo then resolves the dependencies' features once, with the
# dev-dependencies' (as nextest's build below does), so the test build finds
# everything fresh. `--bins` alone resolved them without the
# dev-dependencies and built ~40 crates (tokio, hyper, reqwest, axum,
# async-nats, ...) a second time for the tests.
cargo build --locked --workspace --bins --tests

# The workspace's rust-version (Cargo.toml) covers the std APIs the code
# calls: clippy's incompatible_msrv, alone, so a new clippy's other lints
# never fail CI (packaging/tests/rust_version.rs checks the rest).
echo "==> checking std APIs against rust-version"
cargo clippy --locked --workspace --all-targets -- -A clippy::all -D clippy::incompatible_msrv

echo "==> testing"
cargo nextest run --locked --workspace --no-fail-fast "$@"
