#!/usr/bin/env bash
# Runs the compose stack (docker-compose.yml) on this host.
#   prepare  builds the binaries on the host (cargo build --workspace --bins;
#            SDP_COMPOSE_SKIP_BUILD=1 uses them as built), makes the base
#            images and the build image offline (packaging/images/), copies
#            the base image's Go toolchain to $SDP_COMPOSE_DIR/goroot (build
#            containers mount it), and writes the marker the Dockerfiles
#            ask for
#   up       prepare, then `docker-compose up -d --build` with the demo
#            profile (COMPOSE_PROFILES= for none), waits for /readyz, and
#            with the demo creates environment 'baseline' and template 'shop'
#            (again on a running stack: what changed is recreated)
#   down     stops the agents, removes the containers they deployed (not
#            compose's: labelled sdp.agent=<kind>-<suffix>), then
#            `docker-compose down` (extra args passed on, e.g. -v)
#   anything else is passed to docker-compose (ps, logs -f, ...)
# Knobs: SDP_COMPOSE_* (docs/COMPOSE.md), COMPOSE_PROJECT_NAME.
set -euo pipefail
cd "$(dirname "$0")/.."

export COMPOSE_PROFILES="${COMPOSE_PROFILES-demo}"
BIN_DIR="${SDP_COMPOSE_BIN_DIR:-target/debug}"
BASE_IMAGE="${SDP_COMPOSE_BASE_IMAGE:-sdp-base:bookworm}"
GO_IMAGE="${SDP_COMPOSE_GO_IMAGE:-sdp-go-base:1}"
PHP_IMAGE="${SDP_COMPOSE_PHP_IMAGE:-sdp-php-base:1}"
BUILD_IMAGE="${SDP_COMPOSE_BUILD_IMAGE:-sdp-build:1}"
COMPOSE_DIR="${SDP_COMPOSE_DIR:-/var/lib/sdp-compose}"
SUFFIX="${SDP_COMPOSE_AGENT_SUFFIX:-compose}"
HTTP_PORT="${SDP_COMPOSE_HTTP_PORT:-8080}"
MARKER=target/sdp-compose/run-scripts-compose.sh-prepare-first

# How containers reach published ports: the docker0 bridge's address.
if [ -z "${SDP_COMPOSE_ADVERTISE_HOST:-}" ]; then
  gateway="$(docker network inspect bridge --format '{{range .IPAM.Config}}{{.Gateway}}{{end}}' 2>/dev/null || true)"
  if [ -z "$gateway" ]; then
    gateway="$(ip -4 -o addr show docker0 2>/dev/null | awk '{print $4}' | cut -d/ -f1)"
  fi
  export SDP_COMPOSE_ADVERTISE_HOST="${gateway:-172.17.0.1}"
fi

prepare() {
  if ! command -v docker-compose >/dev/null; then
    echo "error: docker-compose is missing: apt-get install -y docker-compose" >&2
    exit 1
  fi
  if [ "${SDP_COMPOSE_SKIP_BUILD:-}" != 1 ]; then
    echo "==> building the binaries on the host"
    if [ "$BIN_DIR" = target/release ]; then
      cargo build --locked --release --workspace --bins
    else
      cargo build --locked --workspace --bins
    fi
  fi
  for binary in sdp-control-plane sdp-agent-micro sdp-agent-gateway sdp-demo-git; do
    if [ ! -x "$BIN_DIR/$binary" ]; then
      echo "error: $BIN_DIR/$binary is missing: run cargo build --workspace --bins" >&2
      exit 1
    fi
  done
  echo "==> base images ($BASE_IMAGE, $GO_IMAGE, $PHP_IMAGE)"
  packaging/images/make-base-image.sh "$BASE_IMAGE"
  SDP_BASE_IMAGE="$BASE_IMAGE" packaging/images/make-runtime-images.sh "$GO_IMAGE" "$PHP_IMAGE"
  SDP_BASE_IMAGE="$BASE_IMAGE" packaging/images/make-build-image.sh "$BUILD_IMAGE"
  # Build containers mount the Go toolchain from the host (the engine
  # resolves bind mounts there): the base image's GOROOT, copied out once,
  # symlinks resolved, at the path the agent is told (build.goroot).
  if [ ! -x "$COMPOSE_DIR/goroot/bin/go" ]; then
    echo "==> the base image's Go toolchain into $COMPOSE_DIR/goroot"
    mkdir -p "$COMPOSE_DIR/goroot"
    docker run --rm --network none -v "$COMPOSE_DIR/goroot:/out" "$BASE_IMAGE" \
      sh -c 'cp -aL "$(go env GOROOT)"/. /out/'
  fi
  mkdir -p "$(dirname "$MARKER")"
  echo "written by scripts/compose.sh prepare; see docs/COMPOSE.md" >"$MARKER"
}

wait_ready() {
  for _ in $(seq 1 120); do
    curl -sf -o /dev/null "http://127.0.0.1:$HTTP_PORT/readyz" && return 0
    sleep 0.5
  done
  echo "error: the control plane is not ready after 60 s: scripts/compose.sh logs control-plane" >&2
  exit 1
}

# The demo's environment and template, as scripts/dev.sh makes them.
demo_setup() {
  local cookies baseline
  cookies="$(mktemp)"
  baseline="http://$SDP_COMPOSE_ADVERTISE_HOST:${SDP_COMPOSE_BASELINE_PORT:-8091}"
  # Bodies go on stdin: no password in argv.
  for _ in $(seq 1 60); do
    printf '{"username":"demo","password":"demo-password"}' |
      curl -sf -o /dev/null -c "$cookies" -H 'content-type: application/json' --data-binary @- \
        "http://127.0.0.1:$HTTP_PORT/api/login" && break
    sleep 0.5
  done
  # A change sent with the session cookie must name the dashboard's origin.
  api() { curl -s -o /dev/null -b "$cookies" -H "origin: http://127.0.0.1:$HTTP_PORT" \
    -H 'content-type: application/json' --data-binary @- "$@"; }
  printf '{"name":"baseline","vars":{"USERS_URL":"%s","ORDERS_URL":"%s"}}' "$baseline" "$baseline" |
    api "http://127.0.0.1:$HTTP_PORT/api/environments"
  printf '{"name":"shop","environment":"baseline","gateway":{"repo":"gateway","branch":"main"},"services":[{"repo":"users","branch":"main"},{"repo":"orders","branch":"main"}]}' |
    api "http://127.0.0.1:$HTTP_PORT/api/templates"
  rm -f -- "$cookies"
}

case "${1:-}" in
  prepare)
    prepare
    ;;
  up)
    shift
    prepare
    # compose 1.29 recreates a changed container from its old image's
    # ContainerConfig, which Docker Engine 25 and later no longer report
    # (KeyError: 'ContainerConfig'). There the project's containers go
    # first (volumes and data stay), so `up` on a running stack works.
    engine="$(docker version --format '{{.Server.Version}}' 2>/dev/null || echo 0)"
    if [ "${engine%%.*}" -ge 25 ] 2>/dev/null; then
      echo "==> Docker Engine $engine: removing the stack's containers first (compose 1.29 cannot recreate there)"
      docker-compose --profile demo rm -f -s >/dev/null
    fi
    echo "==> docker-compose up -d --build (profiles: ${COMPOSE_PROFILES:-none})"
    docker-compose up -d --build "$@"
    wait_ready
    case ",$COMPOSE_PROFILES," in *,demo,*) demo_setup ;; esac
    echo "SDP is up: http://127.0.0.1:$HTTP_PORT/ (demo login: demo / demo-password)"
    echo "stop it with: scripts/compose.sh down   (add -v to drop the data volumes)"
    ;;
  down)
    shift
    docker-compose stop agent-micro agent-gateway
    for agent in "micro-$SUFFIX" "gateway-$SUFFIX"; do
      mapfile -t ids < <(docker ps -aq --filter "label=sdp.agent=$agent")
      if [ ${#ids[@]} -gt 0 ]; then
        echo "==> removing ${#ids[@]} container(s) deployed by $agent"
        docker rm -f -v "${ids[@]}" >/dev/null
      fi
    done
    docker-compose --profile demo down "$@"
    ;;
  "")
    echo "usage: scripts/compose.sh prepare|up|down|<docker-compose command>" >&2
    exit 2
    ;;
  *)
    docker-compose "$@"
    ;;
esac
