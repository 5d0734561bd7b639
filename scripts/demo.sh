#!/usr/bin/env bash
# Local walkthrough of encstr with a generated keyring; no cluster needed.
# Builds the `encstr` binary, then: keys init, seal a sample config, check,
# decrypt, rotate and re-encrypt, and shows that a token moved to another
# field is refused. Then the operator against the tests' API server: copies,
# an app team without Secret access sealing with the published recipient,
# the sidecar's render, injection, rotation and a refused key loss. Everything happens in ./demo (removed first).
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
show() { printf '$ %s\n' "$*"; "$@"; }

step "build"
cargo build --quiet -p encstr -p encstr-operator -p encstr-tests
bin="${CARGO_TARGET_DIR:-$PWD/target}/debug/encstr"
encstr() { "$bin" "$@"; }
operator_bin="${CARGO_TARGET_DIR:-$PWD/target}/debug/encstr-operator"
apiserver_bin="${CARGO_TARGET_DIR:-$PWD/target}/debug/kube-test-apiserver"
crd="$PWD/crds/encstr.yaml"
pids=()
trap 'for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done' EXIT

rm -rf demo && mkdir demo && cd demo

step "a new keyring (one random key, file mode 0600)"
show encstr keys init --keyring keyring
show ls -l keyring

step "a config file with plaintext secrets"
cat > app.properties <<'PROPS'
# Print server settings
db.url = jdbc:postgresql://db:5432/print
db.user = print
db.password = s3cr3t: with = signs and ünïcode
ldap.bind.password = hunter2
smtp.host = mail.example.com
PROPS
cat > agent.yaml <<'YAML'
replication:
  target: https://backup.example.com   # primary site
  api_token: "tok-3f9a"
  retries: 3
YAML
show cat app.properties agent.yaml

step "seal: encrypt every value whose name looks secret (*password*, *secret*, *token*)"
show encstr seal --keyring keyring app.properties agent.yaml
show cat app.properties agent.yaml

step "check: which key made each token, and does it decrypt"
show encstr check --keyring keyring app.properties agent.yaml

step "decrypt one value (exact bytes, no newline added)"
token=$(sed -n 's/^db.password = //p' app.properties)
show encstr decrypt --keyring keyring --name db.password "$token"
echo

step "rotate: a new primary key; old tokens still decrypt"
show encstr keys rotate --keyring keyring
show encstr keys list --keyring keyring
show encstr check --keyring keyring app.properties

step "re-encrypt everything under the new primary, then prune the old key"
show encstr reencrypt --keyring keyring app.properties agent.yaml
show encstr keys prune --keyring keyring --keep 1
show encstr check --keyring keyring app.properties agent.yaml

step "render: decrypt the sealed files for the app (what the sidecar does in a pod)"
mkdir -p config && cp app.properties agent.yaml config/
show encstr render --source config --target run --keyring keyring --termination-log render.log
show ls -l run
show cat run/app.properties run/agent.yaml

step "a token copied into another field does not decrypt there"
ldap=$(sed -n 's/^ldap.bind.password = //p' app.properties)
printf 'smtp.password = %s\n' "$ldap" > moved.properties
show cat moved.properties
if encstr check --keyring keyring moved.properties; then
  echo "expected the moved token to fail" >&2
  exit 1
fi

step "on Kubernetes: the operator distributes the keyring (the tests' API server stands in for a cluster)"
webhook_port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
# No Service networking here: the API server is told where the webhook's Service is.
"$apiserver_bin" --port 0 --kubeconfig kubeconfig \
  --service-endpoint "encstr/encstr-webhook=127.0.0.1:$webhook_port" > apiserver.port 2> apiserver.log &
pids+=($!)
for _ in $(seq 50); do [ -s kubeconfig ] && break; sleep 0.1; done
export KUBECONFIG="$PWD/kubeconfig" KUBECACHEDIR="$PWD/kube-cache"
show kubectl apply --server-side -f "$crd"
for ns in encstr print-a print-b; do kubectl create namespace "$ns" >/dev/null; done
kubectl label namespace print-b team=print >/dev/null
"$operator_bin" run --listen 127.0.0.1:0 --lease-duration 5 --identity demo \
  --lease-namespace encstr --cluster-resource-namespace encstr \
  --webhook-listen "127.0.0.1:$webhook_port" --webhook-service encstr-webhook \
  --webhook-secret encstr-webhook-tls --webhook-configuration encstr > operator.log 2>&1 &
pids+=($!)
cat > keyring.yaml <<'CSKR'
apiVersion: encstr.io/v1alpha1
kind: ClusterSecretKeyring
metadata: {name: print}
spec:
  targets:
    namespaces: [print-a]
    namespaceSelector: {matchLabels: {team: print}}
  rotation: {every: 2160h, promotionDelay: 2s}
  retention: {maxKeys: 3}
CSKR
show kubectl apply --server-side -f keyring.yaml
for _ in $(seq 100); do kubectl get secret print -n print-b >/dev/null 2>&1 && break; sleep 0.1; done
show kubectl get secrets -A -l encstr.io/cluster-keyring=print -L encstr.io/role
show kubectl get cskr print
show kubectl get cskr print -o jsonpath='{.status.keys}{"\n"}{.status.targets}{"\n"}'

step "an app team that may not read Secrets seals with the recipient the operator publishes"
# The team's own identity: a ServiceAccount in print-a with the namespace's view role.
kubectl create serviceaccount app-team -n print-a >/dev/null
kubectl create rolebinding app-team-view -n print-a --clusterrole=view --serviceaccount=print-a:app-team >/dev/null
cp kubeconfig team-kubeconfig
kubectl --kubeconfig team-kubeconfig config set-credentials app-team --token="$(kubectl create token app-team -n print-a)" >/dev/null
kubectl --kubeconfig team-kubeconfig config set-context --current --user=app-team >/dev/null
team() { KUBECONFIG="$PWD/team-kubeconfig" "$@"; }
if show team kubectl auth can-i get secrets -n print-a; then
  echo "expected the app team not to read Secrets" >&2
  exit 1
fi
for _ in $(seq 100); do team kubectl get configmap print-recipient -n print-a >/dev/null 2>&1 && break; sleep 0.1; done
show team kubectl get configmap print-recipient -n print-a -o jsonpath='{.data.recipient}{"\n"}'
show kubectl get cskr print -o jsonpath='{.status.recipient}{"\n"}'
team kubectl get configmap print-recipient -n print-a -o jsonpath='{.data.recipient}' > recipient.txt
cat > team.properties <<'PROPS'
report.url = https://reports.example.com
report.password = sealed-by-the-app-team
PROPS
show encstr seal --recipient-file recipient.txt team.properties
show cat team.properties

step "an app in print-a renders with its copy of the keyring (what the sidecar does), sealed and encrypted values alike"
(umask 077; kubectl get secret print -n print-a -o jsonpath='{.data.keyring}' | base64 -d > copy-keyring)
printf 'db.password = %s\n' "$(printf %s 'from-the-cluster' | encstr encrypt --name db.password --keyring copy-keyring)" > cluster.properties
mkdir -p cluster-config && cp cluster.properties team.properties cluster-config/
show encstr render --source cluster-config --target cluster-run --keyring copy-keyring
show cat cluster-run/cluster.properties cluster-run/team.properties

step "or let the operator inject the sidecar: a pod label and annotations (the chart's webhook.enabled)"
cat > webhook.yaml <<'MWC'
apiVersion: admissionregistration.k8s.io/v1
kind: MutatingWebhookConfiguration
metadata: {name: encstr}
webhooks:
  - name: inject.encstr.io
    admissionReviewVersions: [v1]
    sideEffects: None
    reinvocationPolicy: IfNeeded
    clientConfig: {service: {name: encstr-webhook, namespace: encstr, path: /inject}}
    rules: [{operations: [CREATE], apiGroups: [""], apiVersions: [v1], resources: [pods], scope: Namespaced}]
    objectSelector: {matchLabels: {encstr.io/inject: "true"}}
MWC
kubectl apply --server-side -f webhook.yaml >/dev/null
for _ in $(seq 100); do
  [ -n "$(kubectl get mutatingwebhookconfiguration encstr -o jsonpath='{.webhooks[0].clientConfig.caBundle}')" ] && break
  sleep 0.1
done
kubectl create configmap agent-config -n print-a --from-file=cluster.properties >/dev/null
cat > pod.yaml <<'POD'
apiVersion: v1
kind: Pod
metadata:
  name: agent
  namespace: print-a
  labels: {encstr.io/inject: "true"}
  annotations: {encstr.io/keyring-secret: print, encstr.io/config-map: agent-config}
spec:
  securityContext: {fsGroup: 65532}
  containers: [{name: agent, image: registry.example.com/print-agent:4.2}]
POD
show kubectl create -f pod.yaml
show kubectl get pod agent -n print-a -o jsonpath='{.spec.initContainers[0].name}: {.spec.initContainers[0].args}{"\n"}{.spec.volumes[*].name}{"\n"}{.spec.containers[0].volumeMounts}{"\n"}'
sed -e 's/name: agent$/name: agent-2/' -e 's/config-map: agent-config/config-map: agent-config, encstr.io\/mode: sidecar/' pod.yaml > bad-pod.yaml
if show kubectl create -f bad-pod.yaml; then
  echo "expected the misconfigured pod to be denied" >&2
  exit 1
fi

step "rotate: staged everywhere first, then promoted; the old value still decrypts"
show kubectl annotate cskr print encstr.io/rotate="$(date +%s)" --overwrite
for _ in $(seq 100); do
  keys=$(kubectl get cskr print -o jsonpath='{.status.keys[*].state}')
  [ "$keys" = "DecryptOnly Primary" ] && break
  sleep 0.1
done
show kubectl get cskr print -o jsonpath='{.status.keys}{"\n"}'
(umask 077; kubectl get secret print -n print-a -o jsonpath='{.data.keyring}' | base64 -d > copy-keyring)
show encstr render --source cluster-config --target cluster-run --keyring copy-keyring
show encstr check --keyring copy-keyring cluster-config/cluster.properties

step "never lose a key: a master edited to drop a key is refused, copies keep every key"
(umask 077
 kubectl get secret print -n encstr -o jsonpath='{.data.keyring}' | base64 -d | tail -n 1 > one-key
 kubectl create secret generic print -n encstr --from-file=keyring=one-key --dry-run=client -o json \
   | python3 -c 'import json,sys; s=json.load(sys.stdin); print(json.dumps({"data": s["data"]}))' > patch.json
 rm -f one-key)
show kubectl patch secret print -n encstr --type merge --patch-file patch.json
for _ in $(seq 100); do
  reason=$(kubectl get cskr print -o jsonpath='{.status.conditions[?(@.type=="Ready")].reason}')
  [ "$reason" = "KeysMissing" ] && break
  sleep 0.1
done
show kubectl get cskr print -o jsonpath='{.status.conditions[?(@.type=="Ready")].message}{"\n"}'
(umask 077; kubectl get secret print -n print-a -o jsonpath='{.data.keyring}' | base64 -d > copy-keyring)
show encstr check --keyring copy-keyring cluster-config/cluster.properties
show kubectl get events --field-selector reason=KeysMissing -A

step "done: the files are in ./demo"
