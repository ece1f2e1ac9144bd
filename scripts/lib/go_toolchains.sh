# shellcheck shell=bash
# Installs the Go toolchains the tests build with besides Debian 12's own
# Go 1.19 (docs/GO_TOOLCHAINS.md): Go 1.22 from Debian bookworm-backports
# (golang-1.22-go, in /usr/lib/go-1.22). Sourced by test.sh.

# The apt source of bookworm-backports, in deb822 form.
SDP_BACKPORTS_SOURCES=/etc/apt/sources.list.d/bookworm-backports.sources

sdp_install_go_toolchains() {
  if [ -x /usr/lib/go-1.22/bin/go ]; then
    return 0
  fi
  local source_text
  source_text='Types: deb
URIs: http://deb.debian.org/debian
Suites: bookworm-backports
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg'
  echo "==> installing Go 1.22 (golang-1.22-go from bookworm-backports)"
  if [ "$(id -u)" -ne 0 ]; then
    echo "error: not root; run:" >&2
    if [ ! -e "$SDP_BACKPORTS_SOURCES" ]; then
      printf "  sudo tee %s >/dev/null <<'EOF'\n%s\nEOF\n" "$SDP_BACKPORTS_SOURCES" "$source_text" >&2
    fi
    echo "  sudo apt-get update" >&2
    echo "  sudo apt-get install -y -t bookworm-backports golang-1.22-go" >&2
    return 1
  fi
  if [ ! -e "$SDP_BACKPORTS_SOURCES" ]; then
    printf '%s\n' "$source_text" >"$SDP_BACKPORTS_SOURCES"
  fi
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq -t bookworm-backports golang-1.22-go >/dev/null
  if [ ! -x /usr/lib/go-1.22/bin/go ]; then
    echo "error: golang-1.22-go is installed but /usr/lib/go-1.22/bin/go is missing" >&2
    return 1
  fi
}
