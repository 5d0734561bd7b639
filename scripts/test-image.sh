#!/usr/bin/env bash
# Build the sidecar image and run `encstr render` in it the way a pod runs
# it: read-only root, user 65532, no network, the source and keyring mounted
# read-only, the target on a tmpfs (a host tmpfs directory, so the rendered
# files can be checked from the host). Also checks the image size.
set -euo pipefail
cd "$(dirname "$0")/.."
image=localhost/encstr:test
./scripts/build-image.sh "$image"
source scripts/podman-env.sh

size=$(podman image inspect "$image" --format '{{.Size}}')
[ "$size" -le $((10 * 1024 * 1024)) ] || { echo "image is $size bytes (> 10 MB)" >&2; exit 1; }

work=$(mktemp -d)
shm=$(mktemp -d /dev/shm/encstr-image.XXXXXX)
trap 'rm -rf "$work" "$shm"' EXIT
bin="${CARGO_TARGET_DIR:-target}/debug/encstr"
[ -x "$bin" ] || cargo build --quiet -p encstr
mkdir -p "$work/config" "$work/keys"
"$bin" keys init --keyring "$work/keys/keyring" >/dev/null
printf 'db.password = %s\ndb.user = app\n' \
  "$(printf %s 'p@ss: w0rd' | "$bin" encrypt --name db.password --keyring "$work/keys/keyring")" > "$work/config/app.properties"
printf 'smtp:\n  password: %s\n' \
  "$(printf %s 'mail-secret' | "$bin" encrypt --name smtp.password --keyring "$work/keys/keyring")" > "$work/config/agent.yaml"
chmod -R a+rX "$work"
chmod 0777 "$shm"

podman run --rm --read-only --user 65532:65532 --network none --cap-drop ALL \
  --security-opt no-new-privileges \
  -v "$work/config:/config:ro" -v "$work/keys:/etc/encstr:ro" -v "$shm:/run/app" \
  "$image" render --source /config --target /run/app --keyring /etc/encstr/keyring --termination-log /run/app/.termination

[ "$(cat "$shm/app.properties")" = "$(printf 'db.password = p@ss\\: w0rd\ndb.user = app')" ] \
  || { echo "unexpected app.properties:" >&2; cat "$shm/app.properties" >&2; exit 1; }
[ "$(cat "$shm/agent.yaml")" = "$(printf 'smtp:\n  password: "mail-secret"')" ] \
  || { echo "unexpected agent.yaml" >&2; exit 1; }
[ "$(stat -c '%a %u' "$shm/..data/app.properties")" = "440 65532" ] \
  || { echo "rendered file mode/owner: $(stat -c '%a %u' "$shm/..data/app.properties")" >&2; exit 1; }

# A failing render inside the container exits 1 and leaves the output intact.
"$bin" keys init --keyring "$work/other" >/dev/null
cp "$work/other" "$work/keys/keyring"
if podman run --rm --read-only --user 65532:65532 --network none --cap-drop ALL \
  -v "$work/config:/config:ro" -v "$work/keys:/etc/encstr:ro" -v "$shm:/run/app" \
  "$image" render --source /config --target /run/app --keyring /etc/encstr/keyring 2>"$work/err"; then
  echo "render with the wrong keyring succeeded" >&2; exit 1
fi
grep -q 'app.properties:1 db.password: unknown_key' "$work/err" || { cat "$work/err" >&2; exit 1; }
grep -q 'p@ss' "$shm/app.properties" || { echo "previous output lost" >&2; exit 1; }
echo "image ok: $image, $size bytes"

# The operator image: built the same way, and its static binary runs on scratch.
./scripts/build-image.sh localhost/encstr-operator:test encstr-operator
podman run --rm --read-only --user 65532:65532 --network none --cap-drop ALL localhost/encstr-operator:test crd > "$work/crd.yaml"
cmp "$work/crd.yaml" crds/encstr.yaml || { echo "the operator image prints a different CRD" >&2; exit 1; }
echo "operator image ok: $(podman image inspect localhost/encstr-operator:test --format '{{.Size}}') bytes"
