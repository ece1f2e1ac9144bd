# shellcheck shell=bash
# The module-cycle check: no import circle between the modules of
# sdp-agentlib and sdp-control-plane (docs/ARCHITECTURE.md: their modules
# form layers). cargo-cycles (crates.io, pinned; built on syn, so it
# installs in a minute or two) reads every `use` of a crate and fails
# naming each circle it finds. What it does not see: a path written
# inline (`crate::x::f()` with no `use`) and `use super::Item` (a child
# using its parent's item, which the layers allow); import through `use`
# so the check covers it. cargo-modules' `--acyclic` was the other
# candidate: it compares items, not modules (every type with a method on
# itself is a "cycle"), and takes about ten minutes to install. Sourced by
# test.sh; run alone with `bash scripts/lib/cycles.sh`.

SDP_CARGO_CYCLES_VERSION=0.2.0
# The crates checked, by directory.
SDP_CYCLE_CHECKED=(agentlib control-plane)

# Installs cargo-cycles into ~/.cargo/bin unless that version is there.
sdp_install_cargo_cycles() {
  if command -v cargo-cycles >/dev/null &&
    cargo-cycles --version 2>/dev/null | grep -qF "$SDP_CARGO_CYCLES_VERSION"; then
    return 0
  fi
  echo "==> installing cargo-cycles $SDP_CARGO_CYCLES_VERSION (crates.io) into ~/.cargo/bin"
  cargo install --locked cargo-cycles --version "$SDP_CARGO_CYCLES_VERSION"
}

# Fails when a checked crate has an import circle between its modules.
# `$1`: the repo root (default: this script's).
sdp_check_module_cycles() {
  local root="${1:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}" dir
  for dir in "${SDP_CYCLE_CHECKED[@]}"; do
    echo "==> checking $dir for module cycles"
    # Inside the crate its own Cargo.toml is the "workspace" (one crate,
    # not every member), and the absolute path names its modules
    # `<dir>::…`, which `crate::` paths resolve against.
    (cd "$root/$dir" && cargo-cycles --workspace "$root/$dir") || {
      echo "error: $dir has an import circle between its modules (above);" \
        "move what both sides need below both (docs/ARCHITECTURE.md)" >&2
      return 1
    }
  done
}

# Fails unless cargo-cycles refuses a crate whose two modules import each
# other: the check above must be able to fail (a changed CLI that checked
# nothing would otherwise pass for ever).
sdp_check_cycle_check_fails() {
  local dir
  dir="$(mktemp -d)"
  mkdir -p "$dir/circle/src"
  printf '[package]\nname = "circle"\nversion = "0.0.0"\nedition = "2024"\n' >"$dir/circle/Cargo.toml"
  printf 'mod a;\nmod b;\n' >"$dir/circle/src/lib.rs"
  printf 'use crate::b::B;\npub struct A(Option<Box<B>>);\n' >"$dir/circle/src/a.rs"
  printf 'use crate::a::A;\npub struct B(Option<Box<A>>);\n' >"$dir/circle/src/b.rs"
  local status=0
  (cd "$dir/circle" && cargo-cycles --workspace "$dir/circle") >"$dir/out" 2>&1 || status=$?
  # Refused for the circle (exit 1, naming it), not for anything else
  # (a panic exits 101).
  if [ "$status" -ne 1 ] || ! grep -q "circular module dependencies" "$dir/out"; then
    cat "$dir/out" >&2
    echo "error: cargo-cycles did not refuse a crate whose modules import each other" >&2
    rm -rf "$dir"
    return 1
  fi
  rm -rf "$dir"
}

if [ "${BASH_SOURCE[0]}" = "$0" ]; then
  set -euo pipefail
  sdp_install_cargo_cycles
  sdp_check_cycle_check_fails
  sdp_check_module_cycles
fi
