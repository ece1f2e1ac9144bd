# shellcheck shell=bash
# What SDP needs from a Debian machine, in two sets: running it
# (scripts/dev.sh: `sdp_install_run_deps`) and testing it (scripts/test.sh:
# `sdp_install_run_deps build` then `sdp_install_test_deps`). Missing
# packages are installed with apt-get, which needs root: as another user
# nothing is installed, and the error names the exact `sudo apt-get
# install` line to run. Sourced by dev.sh and test.sh.
#
# Packages that start a listening service when installed (nginx on :80,
# openssh-server on :22; the tests run them as children of their own) go
# in with a temporary /usr/sbin/policy-rc.d answering 101, so no service
# starts; where systemd is PID 1 their units are then disabled too, so
# none starts at the next boot either. Both steps are printed.

# Debian puts nats-server (and sshd, nginx) in /usr/sbin, which a normal
# user's PATH (login.defs ENV_PATH) lacks.
case ":$PATH:" in
  *:/usr/sbin:*) ;;
  *) export PATH="$PATH:/usr/local/sbin:/usr/sbin:/sbin" ;;
esac

# Packages whose install would start a service listening on a port.
SDP_SERVICE_PACKAGES=(nginx openssh-server postgresql mariadb-server redis-server)
# What each of them enables where systemd runs (ssh: openssh-server's).
SDP_SERVICE_UNITS=(nginx.service ssh.service postgresql.service mariadb.service redis-server.service)

# Running: the binaries, the demo git server (testkit's sdp-demo-git:
# images from busybox, PHP and composer; Go and PHP fixtures) and what
# dev.sh itself calls. With `build`: what `cargo build` needs too.
sdp_install_run_deps() {
  local build="${1:-}" missing=()
  command -v nats-server >/dev/null || missing+=(nats-server)
  # agent-micro runs `go build` (its GOROOT is mounted into build containers).
  command -v go >/dev/null || missing+=(golang-go)
  command -v git >/dev/null || missing+=(git)
  # The base images are cut from the host's busybox, php and composer.
  [ -x /bin/busybox ] || missing+=(busybox-static)
  command -v php >/dev/null || missing+=(php-cli)
  command -v composer >/dev/null || missing+=(composer)
  # The build image carries intl (composer renders its errors with it);
  # its tag is shared with the tests, so every maker must include it.
  dpkg -s php-intl >/dev/null 2>&1 || missing+=(php-intl)
  command -v curl >/dev/null || missing+=(curl)
  command -v ip >/dev/null || missing+=(iproute2)
  if [ "$build" = build ]; then
    # ring, libgit2 and SQLite are compiled from C; git2's https uses
    # the system's OpenSSL, found by pkg-config.
    command -v cc >/dev/null || missing+=(gcc)
    command -v pkg-config >/dev/null || missing+=(pkg-config)
    dpkg -s libssl-dev >/dev/null 2>&1 || missing+=(libssl-dev)
  fi
  sdp_apt_install "${missing[@]}" || return 1
  if [ "$build" = build ]; then
    if ! command -v cc >/dev/null; then
      echo "error: no C compiler (cc): ring, libgit2 and SQLite are built from C; install gcc (sudo apt-get install -y gcc)" >&2
      return 1
    fi
    if ! command -v cargo >/dev/null; then
      echo "error: cargo is missing: install the Rust toolchain (https://rustup.rs), then retry" >&2
      return 1
    fi
  fi
  if ! docker info >/dev/null 2>&1; then
    if [ -S /var/run/docker.sock ] && [ ! -w /var/run/docker.sock ]; then
      echo "error: no access to the Docker engine (/var/run/docker.sock) as $(id -un): add yourself to the docker group (sudo usermod -aG docker $(id -un)), log in again, and retry" >&2
    else
      echo "error: the Docker engine is not reachable: start it (sudo systemctl start docker) and retry" >&2
    fi
    return 1
  fi
}

# Testing: what only the tests use, beyond `sdp_install_run_deps build`.
sdp_install_test_deps() {
  local missing=()
  # The offline-build tests zip a Go module for a file-system GOPROXY.
  command -v zip >/dev/null || missing+=(zip)
  command -v openssl >/dev/null || missing+=(openssl)
  # The dashboard's browser tests drive Debian's headless Chromium.
  command -v chromium >/dev/null || missing+=(chromium)
  command -v chromedriver >/dev/null || missing+=(chromium-driver)
  # The compose stack (scripts/compose.sh, its test): Debian's compose 1.29
  # and debootstrap for the offline base image (packaging/images/).
  command -v docker-compose >/dev/null || missing+=(docker-compose)
  command -v debootstrap >/dev/null || missing+=(debootstrap)
  # The release bundle's tests (packaging/): nginx and sshd run as test
  # children, systemd-analyze verifies the units, strip.
  [ -x /usr/sbin/nginx ] || missing+=(nginx)
  [ -x /usr/sbin/sshd ] || missing+=(openssh-server)
  command -v ssh >/dev/null || missing+=(openssh-client)
  command -v systemd-analyze >/dev/null || missing+=(systemd)
  command -v strip >/dev/null || missing+=(binutils)
  # Sandbox resources' images (packaging/images/resource-rootfs.sh) are
  # cut from the host's database servers and clients.
  compgen -G '/usr/lib/postgresql/*/bin/postgres' >/dev/null || missing+=(postgresql)
  [ -x /usr/sbin/mariadbd ] || missing+=(mariadb-server)
  command -v mariadb >/dev/null || missing+=(mariadb-client)
  command -v redis-server >/dev/null || missing+=(redis-server)
  command -v redis-cli >/dev/null || missing+=(redis-tools)
  sdp_apt_install "${missing[@]}"
}

# Whether systemd is PID 1 (the check sd_booted(3) makes).
sdp_systemd_runs() { [ -d /run/systemd/system ]; }

# Installs the Debian packages given (none: nothing to do). Not root: names
# the command to run instead and fails.
sdp_apt_install() {
  [ $# -gt 0 ] || return 0
  local pkg unit i services=() units=()
  for pkg in "$@"; do
    for i in "${!SDP_SERVICE_PACKAGES[@]}"; do
      if [ "$pkg" = "${SDP_SERVICE_PACKAGES[$i]}" ]; then
        services+=("$pkg")
        units+=("${SDP_SERVICE_UNITS[$i]}")
      fi
    done
  done
  if [ "$(id -u)" -ne 0 ]; then
    echo "error: missing Debian packages: $*" >&2
    echo "  installing them needs root; run this, then this script again:" >&2
    echo "    sudo apt-get install -y $*" >&2
    if [ ${#services[@]} -gt 0 ]; then
      echo "  ${services[*]} start(s) a listening service (:80, :22) when installed; the tests" >&2
      echo "  only run the binaries. To keep them stopped, run this script as root instead" >&2
      echo "  (it installs them with a policy-rc.d that stops services from starting), or" >&2
      echo "  afterwards: sudo systemctl disable --now ${units[*]}" >&2
    fi
    return 1
  fi
  echo "==> installing: $*"
  apt-get update -qq
  local policy=/usr/sbin/policy-rc.d made_policy=0 status=0
  if [ ${#services[@]} -gt 0 ] && [ ! -e "$policy" ]; then
    echo "==> ${services[*]} would start a service: installing with a temporary $policy (exit 101: start nothing)"
    printf '#!/bin/sh\n# scripts/lib/deps.sh: no service starts while SDP test packages install.\nexit 101\n' >"$policy"
    chmod 755 "$policy"
    made_policy=1
  fi
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null || status=$?
  if [ "$made_policy" = 1 ]; then
    rm -f -- "$policy"
    echo "==> removed the temporary $policy"
  fi
  [ "$status" = 0 ] || return "$status"
  if [ ${#units[@]} -gt 0 ] && sdp_systemd_runs; then
    echo "==> systemd runs here: disabling ${units[*]} so they do not start at boot (tests run the binaries themselves; undo: systemctl enable --now ${units[*]})"
    for unit in "${units[@]}"; do
      systemctl disable --now "$unit" >/dev/null 2>&1 || true
    done
  fi
}
