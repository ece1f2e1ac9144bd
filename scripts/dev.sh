#!/usr/bin/env bash
# Starts the whole SDP platform on this machine: nats-server, a demo git
# server (smart HTTP, basic auth) holding a demo Go service, the control
# plane and agent-micro. Prints the dashboard URL and the demo login.
# Ctrl-C stops everything within seconds. State lives in .dev/ (delete it
# to start over).
#
# Runs as any user in the `docker` group once the Debian packages it needs
# are there (scripts/lib/deps.sh, `sdp_install_run_deps`); only installing
# missing ones needs root, and as another user it prints the `sudo apt-get
# install` line instead. It installs nothing that serves a port.
#
# Overrides (the dev.sh test runs a second platform beside yours):
#   SDP_DEV_DIR, SDP_DEV_HTTP_PORT, SDP_DEV_GIT_PORT, SDP_DEV_NATS_PORT,
#   SDP_DEV_NATS_HTTP_PORT, SDP_DEV_AGENT_SUFFIX, SDP_DEV_GO_IMAGE,
#   SDP_DEV_PHP_IMAGE, SDP_DEV_BUILD_IMAGE, SDP_DEV_SKIP_BUILD=1 (use the
#   binaries as built: no cargo, no C compiler needed).
set -euo pipefail
cd "$(dirname "$0")/.."

DEV="${SDP_DEV_DIR:-$PWD/.dev}"
HTTP_PORT="${SDP_DEV_HTTP_PORT:-8080}"
GIT_PORT="${SDP_DEV_GIT_PORT:-8090}"
NATS_PORT="${SDP_DEV_NATS_PORT:-4222}"
NATS_HTTP_PORT="${SDP_DEV_NATS_HTTP_PORT:-8222}"
AGENT_SUFFIX="${SDP_DEV_AGENT_SUFFIX:-dev}"
DEMO_USER=demo
DEMO_PASSWORD=demo-password
BASE_IMAGE="${SDP_DEV_GO_IMAGE:-sdp-go-base:1}"
PHP_IMAGE="${SDP_DEV_PHP_IMAGE:-sdp-php-base:1}"
BUILD_IMAGE="${SDP_DEV_BUILD_IMAGE:-sdp-build:1}"
SKIP_BUILD="${SDP_DEV_SKIP_BUILD:-}"
BIN="${CARGO_TARGET_DIR:-$PWD/target}/debug"

source scripts/lib/deps.sh
if [ "$SKIP_BUILD" = 1 ]; then
  sdp_install_run_deps
else
  sdp_install_run_deps build
fi

# The servers read SDP_CONTROL_PLANE__* and SDP_AGENT__* as config (and
# nothing else: the CLI's SDP_URL, SDP_TOKEN may stay exported). The dev
# platform is configured below alone, so none from this shell leaks in.
leaked=("${!SDP_CONTROL_PLANE__@}" "${!SDP_AGENT__@}")
if [ ${#leaked[@]} -gt 0 ]; then
  echo "==> ignoring ${leaked[*]} from the environment (dev.sh sets its own)"
  unset "${leaked[@]}"
fi

for port in "$HTTP_PORT" "$GIT_PORT" "$NATS_PORT" "$NATS_HTTP_PORT"; do
  if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
    echo "error: port $port is in use: stop what listens there (ss -ltnp | grep :$port)" >&2
    exit 1
  fi
done

if [ "$SKIP_BUILD" != 1 ]; then
  echo "==> building"
  cargo build --locked --workspace --bins
fi
for binary in sdp-demo-git sdp-control-plane sdp-agent-micro sdp-agent-gateway; do
  if [ ! -x "$BIN/$binary" ]; then
    echo "error: $BIN/$binary is missing: build it (cargo build --workspace --bins) or drop SDP_DEV_SKIP_BUILD" >&2
    exit 1
  fi
done
mkdir -p "$DEV"/{nats,repos,repos-gateway,control-plane,agent-micro,agent-gateway,logs}

pids=()
# Stops everything this script started and exits: a trap that returned
# would let the script go on starting the rest, with nobody left to stop it.
cleanup() {
  local status=$?
  trap - EXIT INT TERM
  echo; echo "==> stopping"
  if [ ${#pids[@]} -gt 0 ]; then
    kill -TERM "${pids[@]}" 2>/dev/null || true
    # A grace period for clean shutdowns, then no more waiting.
    for _ in $(seq 1 50); do
      local alive=0
      for pid in "${pids[@]}"; do kill -0 "$pid" 2>/dev/null && alive=1; done
      [ "$alive" = 0 ] && break
      sleep 0.1
    done
    kill -KILL "${pids[@]}" 2>/dev/null || true
    wait 2>/dev/null || true
  fi
  # The demo agents' containers go too.
  for agent in "micro-$AGENT_SUFFIX" "gateway-$AGENT_SUFFIX"; do
    containers=$(docker ps -aq --filter "label=sdp.agent=$agent")
    [ -z "$containers" ] || docker rm -f $containers >/dev/null
  done
  exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

wait_port() { # port name
  for _ in $(seq 1 100); do
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
    sleep 0.1
  done
  echo "error: $2 did not start; see $DEV/logs/$2.log" >&2
  exit 1
}

echo "==> nats-server on :$NATS_PORT"
nats-server -c nats/dev.conf -p "$NATS_PORT" -m "$NATS_HTTP_PORT" -sd "$DEV/nats" \
  >"$DEV/logs/nats.log" 2>&1 &
pids+=($!)
wait_port "$NATS_PORT" nats

echo "==> demo git server on :$GIT_PORT, baseline server, base images $BASE_IMAGE $PHP_IMAGE"
# The password goes by environment, never argv.
SDP_DEMO_GIT_PASSWORD="$DEMO_PASSWORD" \
  "$BIN/sdp-demo-git" --port "$GIT_PORT" --user "$DEMO_USER" \
  --base-image "$BASE_IMAGE" --php-image "$PHP_IMAGE" --build-image "$BUILD_IMAGE" >"$DEV/logs/git.log" 2>&1 &
pids+=($!)
for _ in $(seq 1 600); do grep -q '^baseline ' "$DEV/logs/git.log" && break; sleep 0.2; done
BASELINE=$(sed -n 's/^baseline //p' "$DEV/logs/git.log")
[ -n "$BASELINE" ] || { echo "error: the demo git server did not start; see $DEV/logs/git.log" >&2; exit 1; }

# Each agent's repos_dir: one repo per service, origin = the git server.
add_repo() { # dir name
  if [ ! -d "$1/$2/.git" ]; then
    git init -q "$1/$2"
    git -C "$1/$2" remote add origin "http://127.0.0.1:$GIT_PORT/$2.git"
  fi
}
add_repo "$DEV/repos" users
add_repo "$DEV/repos" orders
add_repo "$DEV/repos-gateway" gateway
# Containers reach each other's published ports through the host's address
# on the Docker bridge.
BRIDGE=$(ip -4 -o addr show docker0 2>/dev/null | awk '{print $4}' | cut -d/ -f1)
BRIDGE=${BRIDGE:-127.0.0.1}

echo "==> control plane on :$HTTP_PORT"
SDP_CONTROL_PLANE__HTTP__ADDR="127.0.0.1:$HTTP_PORT" \
SDP_CONTROL_PLANE__NATS__URL="nats://127.0.0.1:$NATS_PORT" \
SDP_CONTROL_PLANE__DATA_DIR="$DEV/control-plane" \
SDP_CONTROL_PLANE__AUTH__CREDENTIAL_CHECK_REPO="http://127.0.0.1:$GIT_PORT/probe.git" \
  "$BIN/sdp-control-plane" serve >"$DEV/logs/control-plane.log" 2>&1 &
pids+=($!)
wait_port "$HTTP_PORT" control-plane

echo "==> agent-micro"
SDP_AGENT__AGENT__ID="micro-$AGENT_SUFFIX" \
SDP_AGENT__NATS__URL="nats://127.0.0.1:$NATS_PORT" \
SDP_AGENT__DATA_DIR="$DEV/agent-micro" \
SDP_AGENT__REPOS_DIR="$DEV/repos" \
SDP_AGENT__ADVERTISE_HOST="$BRIDGE" \
SDP_AGENT__FLAVOUR__BASE_IMAGE="$BASE_IMAGE" \
SDP_AGENT__BUILD__IMAGE="$BUILD_IMAGE" \
SDP_AGENT__GIT__ALLOWED_SCHEMES=https,http \
SDP_AGENT__HEALTH__PATH=/healthz \
  "$BIN/sdp-agent-micro" >"$DEV/logs/agent-micro.log" 2>&1 &
pids+=($!)

echo "==> agent-gateway"
SDP_AGENT__AGENT__ID="gateway-$AGENT_SUFFIX" \
SDP_AGENT__NATS__URL="nats://127.0.0.1:$NATS_PORT" \
SDP_AGENT__DATA_DIR="$DEV/agent-gateway" \
SDP_AGENT__REPOS_DIR="$DEV/repos-gateway" \
SDP_AGENT__ADVERTISE_HOST="$BRIDGE" \
SDP_AGENT__FLAVOUR__BASE_IMAGE="$PHP_IMAGE" \
SDP_AGENT__BUILD__IMAGE="$BUILD_IMAGE" \
SDP_AGENT__GIT__ALLOWED_SCHEMES=https,http \
SDP_AGENT__HEALTH__PATH=/healthz \
  "$BIN/sdp-agent-gateway" >"$DEV/logs/agent-gateway.log" 2>&1 &
pids+=($!)

echo "==> demo environment 'baseline' and template 'shop'"
COOKIES="$DEV/cookies"
for _ in $(seq 1 100); do
  curl -sf -c "$COOKIES" -H 'content-type: application/json' \
    -d "{\"username\":\"$DEMO_USER\",\"password\":\"$DEMO_PASSWORD\"}" \
    "http://127.0.0.1:$HTTP_PORT/api/login" >/dev/null && break
  sleep 0.2
done
# A change sent with the session cookie must name the dashboard's origin.
api() { curl -s -o /dev/null -b "$COOKIES" -H "origin: http://127.0.0.1:$HTTP_PORT" \
  -H 'content-type: application/json' "$@"; }
api -d "{\"name\":\"baseline\",\"vars\":{\"USERS_URL\":\"$BASELINE\",\"ORDERS_URL\":\"$BASELINE\"}}" \
  "http://127.0.0.1:$HTTP_PORT/api/environments"
api -X PUT -d "{\"vars\":{\"USERS_URL\":\"$BASELINE\",\"ORDERS_URL\":\"$BASELINE\"}}" \
  "http://127.0.0.1:$HTTP_PORT/api/environments/baseline"
api -d '{"name":"shop","environment":"baseline","gateway":{"repo":"gateway","branch":"main"},"services":[{"repo":"users","branch":"main"},{"repo":"orders","branch":"main"}]}' \
  "http://127.0.0.1:$HTTP_PORT/api/templates"
rm -f "$COOKIES"

cat <<EOM

SDP is running.
  dashboard:  http://127.0.0.1:$HTTP_PORT/
  login:      $DEMO_USER / $DEMO_PASSWORD
  demo repos: users (main, feature/x), orders (main, feature/y), gateway (main)
  demo setup: environment 'baseline' (→ $BASELINE), template 'shop'
              create a sandbox from 'shop' in the dashboard and deploy it
  try:        TOKEN=\$(curl -s -H 'content-type: application/json' \\
                -d '{"username":"$DEMO_USER","password":"$DEMO_PASSWORD"}' http://127.0.0.1:$HTTP_PORT/api/login |
                sed -n 's/.*"token":"\\([0-9a-f]*\\)".*/\\1/p')
              curl -H "authorization: Bearer \$TOKEN" -H 'content-type: application/json' \\
                -d '{"repo":"users","branch":"feature/x"}' http://127.0.0.1:$HTTP_PORT/api/sandboxes/alpha/deployments
  logs:       $DEV/logs/
Ctrl-C stops everything.
EOM
wait
