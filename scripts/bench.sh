#!/usr/bin/env bash
# The performance benchmarks (targets in docs/BENCHMARKS.md) on real parts; prints result tables.
#   scripts/bench.sh              # all
#   SDP_BENCH_LINES=20000 scripts/bench.sh
#   SDP_BENCH_GIT_COMMITS=20000 SDP_BENCH_GIT_FILES=5000 scripts/bench.sh   # smaller git repo
#   scripts/bench.sh team fleet   # only these
#   SDP_BENCH_TEAM_SANDBOXES=60 scripts/bench.sh team   # a smaller team
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib/deps.sh
sdp_install_deps
# Benches run optimised; they start the release binaries.
cargo build --locked --release --workspace --bins
benches=(deploy git_fetch log_pipeline dashboard_log fleet wake rest_scale idle team)
[ "$#" -gt 0 ] && benches=("$@")
for bench in "${benches[@]}"; do
  cargo bench --locked -p sdp-control-plane --bench "$bench" 2>/dev/null | grep -E '^\|'
  echo
done
