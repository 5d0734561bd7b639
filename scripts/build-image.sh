#!/usr/bin/env bash
# Build a static binary and its image, offline: the image is FROM scratch and
# its build context holds only the binary.
#   scripts/build-image.sh [IMAGE] [encstr|encstr-operator]
#   (defaults: localhost/encstr:dev, encstr — the sidecar; the operator uses Dockerfile.operator)
# Needs podman or buildah (scripts/podman-env.sh sets them up for this host).
set -euo pipefail
cd "$(dirname "$0")/.."
image="${1:-localhost/encstr:dev}"
binary="${2:-encstr}"
case "$binary" in
  encstr) dockerfile=Dockerfile ;;
  encstr-operator) dockerfile=Dockerfile.operator ;;
  *) echo "unknown binary $binary" >&2; exit 2 ;;
esac
target=x86_64-unknown-linux-gnu

# +crt-static only for the target, not for build scripts and proc-macros.
RUSTFLAGS='-C target-feature=+crt-static' cargo build --release --locked --target "$target" -p "$binary"
bin="${CARGO_TARGET_DIR:-target}/$target/release/$binary"
file "$bin" 2>/dev/null | grep -qE 'static(-pie)? linked|statically linked' || ldd "$bin" 2>&1 | grep -qE 'not a dynamic executable|statically linked' \
  || { echo "$bin is not statically linked" >&2; exit 1; }

ctx=$(mktemp -d)
trap 'rm -rf "$ctx"' EXIT
cp "$bin" "$ctx/$binary"
cp "$dockerfile" "$ctx/Dockerfile"
source scripts/podman-env.sh
podman build --quiet --pull=never -t "$image" -f "$ctx/Dockerfile" "$ctx" >/dev/null
echo "built $image ($(podman image inspect "$image" --format '{{.Size}}') bytes; binary $(stat -c %s "$bin") bytes)"
