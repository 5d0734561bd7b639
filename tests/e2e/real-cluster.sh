#!/usr/bin/env bash
# The end-to-end client scenarios against a real cluster (kind, k3d, ...),
# through KUBECONFIG. Not run in CI (no cluster can run there); run it where
# one exists:
#
#   kind create cluster --name encstr && KUBECONFIG=~/.kube/config tests/e2e/real-cluster.sh
#
# Everything happens in a fresh namespace and a test CRD (widgets.e2e.encstr.io), both removed
# at the end, also on failure. Exits non-zero on the first failed check.
set -euo pipefail
: "${KUBECONFIG:?set KUBECONFIG to the cluster to test}"
KUBECTL=${KUBECTL:-kubectl}
ns="encstr-e2e-$(date +%s)-$RANDOM"
crd=widgets.e2e.encstr.io
work=$(mktemp -d)
cleanup() {
  $KUBECTL delete namespace "$ns" --ignore-not-found --wait=false >/dev/null 2>&1 || true
  $KUBECTL delete crd "$crd" --ignore-not-found >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }
ok() { echo "ok: $*"; }

$KUBECTL version >/dev/null || fail "cannot reach the cluster"
$KUBECTL create namespace "$ns" >/dev/null && ok "create namespace"

cat > "$work/crd.yaml" <<YAML
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: $crd
spec:
  group: e2e.encstr.io
  names: {kind: Widget, plural: widgets, singular: widget, shortNames: [e2ewd]}
  scope: Namespaced
  versions:
  - name: v1
    served: true
    storage: true
    subresources: {status: {}}
    schema:
      openAPIV3Schema:
        type: object
        x-kubernetes-preserve-unknown-fields: true
YAML
$KUBECTL apply --server-side -f "$work/crd.yaml" >/dev/null
$KUBECTL wait --for=condition=Established "crd/$crd" --timeout=60s >/dev/null && ok "apply --server-side CRD"

cat > "$work/cr.yaml" <<YAML
apiVersion: e2e.encstr.io/v1
kind: Widget
metadata: {name: w1, namespace: $ns, labels: {color: blue}}
spec: {size: 3}
---
apiVersion: e2e.encstr.io/v1
kind: Widget
metadata: {name: w2, namespace: $ns, labels: {color: red}}
spec: {size: 1}
YAML
[ "$($KUBECTL apply --server-side -f "$work/cr.yaml" | grep -c serverside-applied)" = 2 ] || fail "apply CRs"
ok "apply --server-side custom resources"

names=$($KUBECTL get e2ewd -n "$ns" -l color=blue -o json | python3 -c 'import json,sys; print(" ".join(i["metadata"]["name"] for i in json.load(sys.stdin)["items"]))')
[ "$names" = w1 ] || fail "label selector returned: $names"
ok "get -o json with a label selector"

$KUBECTL annotate widget w1 -n "$ns" encstr.io/rotate=1 >/dev/null
$KUBECTL label widgets.e2e.encstr.io w2 -n "$ns" color=blue --overwrite >/dev/null
[ "$($KUBECTL get e2ewd w1 -n "$ns" -o jsonpath='{.metadata.annotations.encstr\.io/rotate}')" = 1 ] || fail annotate
[ "$($KUBECTL get e2ewd -n "$ns" -l 'color in (blue)' -o name | wc -l)" = 2 ] || fail label
ok "annotate and label"

$KUBECTL get e2ewd -n "$ns" -w -o json --request-timeout=10s > "$work/watch.json" 2>/dev/null &
watcher=$!
sleep 2
$KUBECTL annotate e2ewd w2 -n "$ns" seen=yes >/dev/null
sleep 2
kill "$watcher" 2>/dev/null || true
grep -q '"seen": "yes"' "$work/watch.json" || fail "get -w did not stream the change"
ok "get -w streams a change"

$KUBECTL delete e2ewd w1 -n "$ns" >/dev/null
[ "$($KUBECTL get e2ewd -n "$ns" -o name | wc -l)" = 1 ] || fail delete
ok "delete"
echo "all real-cluster scenarios passed (namespace $ns)"
