#!/usr/bin/env bash
# Soak: concurrent deploys into many sandboxes, many WebSocket viewers each,
# an agent bounced mid-way; then checks every deployment is terminal and the
# control plane's memory, open files and the container count are back to
# flat, and prints the figures. Bounded: SDP_SOAK_DEPLOYS (default 20)
# deploys x SDP_SOAK_VIEWERS (default 25) viewers, 180 s per deployment at
# most. CI runs the same test small (6 x 10) in scripts/test.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib/deps.sh
sdp_install_deps
cargo build --locked --workspace --bins
SDP_SOAK_DEPLOYS="${SDP_SOAK_DEPLOYS:-20}" SDP_SOAK_VIEWERS="${SDP_SOAK_VIEWERS:-25}" \
  cargo nextest run --locked -p sdp-control-plane --no-capture -E 'test(soak)'
