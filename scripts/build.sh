#!/usr/bin/env bash
# Builds the release bundle: dist/sdp-<version>-linux-<arch>.tar.gz and
# dist/SHA256SUMS. The bundle holds bin/ (the four binaries), etc/ (a sample
# config per service), nats/ (production config, auth template, cert
# script), systemd/ (units), nginx/sdp.conf, images/ (the base images, from
# packaging/images/ when that exists), install.sh, VERSION and its own
# SHA256SUMS (checked by install.sh).
#
#   scripts/build.sh [--profile release|dev] [--no-build] [--images] [--out DIR]
#
# --profile release (default): cargo build --release (minutes).
# --profile dev: the debug build in target/debug (what scripts/test.sh
#   builds anyway): the packaging tests use it so CI skips a release build.
# --no-build: take the binaries as they are in target/<profile>.
# --images: also run packaging/images/save-images.sh into the bundle's
#   images/ (docker save of the base images, made first when missing;
#   needs Docker, and debootstrap the first time).
# SDP_VERSION overrides the version (default: the workspace's).
set -euo pipefail
cd "$(dirname "$0")/.."

PROFILE=release
BUILD=1
IMAGES=0
OUT="$PWD/dist"
while [ $# -gt 0 ]; do
  case "$1" in
    --profile) [ $# -ge 2 ] || { echo "error: --profile needs a value" >&2; exit 2; }; PROFILE="$2"; shift 2 ;;
    --no-build) BUILD=0; shift ;;
    --images) IMAGES=1; shift ;;
    --out) [ $# -ge 2 ] || { echo "error: --out needs a value" >&2; exit 2; }; OUT="$2"; shift 2 ;;
    -h | --help) sed -n '2,18p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "error: unknown argument '$1'" >&2; exit 2 ;;
  esac
done
case "$PROFILE" in
  release) CARGO_FLAGS=(--release); TARGET_SUBDIR=release; GZIP_LEVEL=-9 ;;
  # Fast compression: a dev bundle is for tests, and its binaries are big.
  dev) CARGO_FLAGS=(); TARGET_SUBDIR=debug; GZIP_LEVEL=-1 ;;
  *) echo "error: --profile is release or dev" >&2; exit 2 ;;
esac

VERSION="${SDP_VERSION:-$(sed -n '/^\[workspace.package\]/,/^\[/s/^version = "\(.*\)"/\1/p' Cargo.toml)}"
if ! [[ "$VERSION" =~ ^[0-9A-Za-z.+~-]+$ ]]; then
  echo "error: bad version '$VERSION'" >&2
  exit 2
fi
ARCH=$(uname -m)
NAME="sdp-$VERSION-linux-$ARCH"
BINARIES=(sdp-control-plane sdp-agent-micro sdp-agent-gateway sdp)
BIN_DIR="${CARGO_TARGET_DIR:-$PWD/target}/$TARGET_SUBDIR"

if [ "$BUILD" = 1 ]; then
  echo "==> cargo build (${PROFILE})"
  cargo build --locked "${CARGO_FLAGS[@]}" -p sdp-control-plane -p sdp-agent-micro \
    -p sdp-agent-gateway -p sdp-cli --bins
fi

mkdir -p "$OUT"
STAGE=$(mktemp -d "$OUT/.stage.XXXXXX")
trap 'rm -rf "$STAGE"' EXIT
B="$STAGE/$NAME"
mkdir -p "$B"/{bin,etc,nats,systemd,nginx}

echo "==> staging $NAME"
for bin in "${BINARIES[@]}"; do
  [ -x "$BIN_DIR/$bin" ] || { echo "error: $BIN_DIR/$bin is missing: build it first" >&2; exit 1; }
  install -m 755 "$BIN_DIR/$bin" "$B/bin/$bin"
  # Debug info is for developers' machines (a dev build's is most of its size).
  strip --strip-debug "$B/bin/$bin"
done
install -m 644 control-plane/control-plane.sample.toml "$B/etc/control-plane.sample.toml"
install -m 644 agent-micro/agent-micro.sample.toml "$B/etc/agent-micro.sample.toml"
install -m 644 agent-gateway/agent-gateway.sample.toml "$B/etc/agent-gateway.sample.toml"
install -m 644 nats/production.conf nats/auth.conf nats/README.md "$B/nats/"
install -m 755 nats/gen-dev-certs.sh nats/gen-auth.sh "$B/nats/"
install -m 644 packaging/systemd/*.service "$B/systemd/"
install -m 644 packaging/nginx/sdp.conf "$B/nginx/"
install -m 755 packaging/install.sh "$B/install.sh"
install -m 644 README.md "$B/README.md"
install -m 644 docs/INSTALL.md "$B/INSTALL.md"
if [ -d packaging/images ]; then
  # The scripts that make and save the base images (packaging/images/).
  cp -R packaging/images "$B/images"
  if [ "$IMAGES" = 1 ]; then
    echo "==> saving the base images"
    packaging/images/save-images.sh "$B/images"
  fi
elif [ "$IMAGES" = 1 ]; then
  echo "error: --images: packaging/images/ is not in this tree" >&2
  exit 1
else
  mkdir -p "$B/images"
  echo "packaging/images/ is not in this tree: no base images in this bundle." \
    >"$B/images/README.txt"
fi
printf '%s\n' "$VERSION" >"$B/VERSION"
(cd "$B" && find . -type f ! -name SHA256SUMS -printf '%P\n' | LC_ALL=C sort |
  xargs -d '\n' sha256sum >SHA256SUMS)

echo "==> packing"
TARBALL="$OUT/$NAME.tar.gz"
# Reproducible: sorted names, fixed owner and time, no gzip timestamp.
tar -C "$STAGE" --sort=name --owner=0 --group=0 --numeric-owner \
  --mtime=@0 -cf - "$NAME" | gzip -n "$GZIP_LEVEL" >"$TARBALL.tmp"
mv -f "$TARBALL.tmp" "$TARBALL"
(cd "$OUT" && find . -maxdepth 1 -name 'sdp-*.tar.gz' -printf '%P\n' | LC_ALL=C sort |
  xargs -d '\n' sha256sum >SHA256SUMS)
echo "$TARBALL ($(du -h "$TARBALL" | cut -f1))"
