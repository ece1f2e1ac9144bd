# shellcheck shell=bash
# Installs what a fresh Debian machine lacks for building, running and
# testing SDP. Sourced by dev.sh and test.sh.

sdp_install_deps() {
  local missing=()
  command -v nats-server >/dev/null || missing+=(nats-server)
  command -v go >/dev/null || missing+=(golang-go)
  command -v git >/dev/null || missing+=(git)
  [ -x /bin/busybox ] || missing+=(busybox-static)
  command -v php >/dev/null || missing+=(php-cli)
  command -v composer >/dev/null || missing+=(composer)
  # The build image (testkit, make-build-image.sh) carries intl: composer
  # renders its errors with it.
  dpkg -s php-intl >/dev/null 2>&1 || missing+=(php-intl)
  command -v curl >/dev/null || missing+=(curl)
  # The offline-build tests zip a Go module for a file-system GOPROXY.
  command -v zip >/dev/null || missing+=(zip)
  command -v ip >/dev/null || missing+=(iproute2)
  command -v openssl >/dev/null || missing+=(openssl)
  # The dashboard's browser tests drive Debian's headless Chromium.
  command -v chromium >/dev/null || missing+=(chromium)
  command -v chromedriver >/dev/null || missing+=(chromium-driver)
  command -v pkg-config >/dev/null || missing+=(pkg-config)
  dpkg -s libssl-dev >/dev/null 2>&1 || missing+=(libssl-dev)
  # The compose stack (scripts/compose.sh, its test): Debian's compose 1.29
  # and debootstrap for the offline base image (packaging/images/).
  command -v docker-compose >/dev/null || missing+=(docker-compose)
  command -v debootstrap >/dev/null || missing+=(debootstrap)
  # The release bundle's tests (packaging/): Debian's nginx and sshd run as
  # test children (Docker's policy-rc.d, or no systemd, keeps the packages'
  # services from starting), systemd-analyze verifies the units, strip.
  [ -x /usr/sbin/nginx ] || missing+=(nginx)
  [ -x /usr/sbin/sshd ] || missing+=(openssh-server)
  command -v ssh >/dev/null || missing+=(openssh-client)
  command -v systemd-analyze >/dev/null || missing+=(systemd)
  command -v strip >/dev/null || missing+=(binutils)
  if [ ${#missing[@]} -gt 0 ]; then
    echo "==> installing: ${missing[*]}"
    if [ "$(id -u)" -ne 0 ]; then
      echo "error: not root; run: sudo apt-get install -y ${missing[*]}" >&2
      return 1
    fi
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
  fi
  if ! docker info >/dev/null 2>&1; then
    echo "error: the Docker engine is not reachable: start it (systemctl start docker) and retry" >&2
    return 1
  fi
  if ! command -v cargo >/dev/null; then
    echo "error: cargo is missing: install the Rust toolchain (rustup)" >&2
    return 1
  fi
}
