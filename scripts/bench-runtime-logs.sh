#!/usr/bin/env bash
# Runtime logs: a container printing 10,000 lines/s, followed by
# one slow viewer (~100 KiB/s) for SDP_BENCH_SECS (default 20) seconds; the
# RSS of the control plane and the agent (/proc/<pid>/status VmRSS) is
# sampled every second. Prints one JSON line (BENCH {...}); the figures go
# in docs/BENCHMARKS.md.
#   scripts/bench-runtime-logs.sh
#   SDP_BENCH_SECS=60 scripts/bench-runtime-logs.sh
#   SDP_BENCH_RELEASE=1 scripts/bench-runtime-logs.sh   # optimised binaries
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib/deps.sh
sdp_install_deps
profile=()
if [ "${SDP_BENCH_RELEASE:-0}" = 1 ]; then
  profile=(--release)
fi
# The test starts the binaries built beside it.
cargo build --locked "${profile[@]}" --workspace --bins
cargo nextest run --locked "${profile[@]}" -p sdp-control-plane --test e2e \
  --run-ignored only --no-capture bench_runtime_logs_slow_viewer_rss 2>&1 |
  grep -E '^BENCH ' | sed 's/^BENCH //'
