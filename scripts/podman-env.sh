# Source this: podman settings that work in unprivileged CI sandboxes
# (runc, lowered ulimits, vfs storage when overlay is unavailable).
# Installs podman from Debian when it is missing.
if ! command -v podman >/dev/null 2>&1; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >/dev/null
  apt-get install -y -qq --no-install-recommends podman buildah runc crun fuse-overlayfs uidmap slirp4netns \
    netavark aardvark-dns containernetworking-plugins catatonit >/dev/null
fi
_encstr_podman_dir="${XDG_RUNTIME_DIR:-/tmp}/encstr-podman"
mkdir -p "$_encstr_podman_dir"
cat > "$_encstr_podman_dir/containers.conf" <<'CONF'
[containers]
default_ulimits = ["nofile=1024:1024", "nproc=4096:4096"]
[engine]
runtime = "runc"
CONF
export CONTAINERS_CONF="$_encstr_podman_dir/containers.conf"
