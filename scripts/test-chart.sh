#!/usr/bin/env bash
# Packaging checks with the real tools: helm lint/template, kubernetes-validate
# --strict, values.schema.json, CRD copies, yamllint, promtool check/test rules,
# the dashboard, example SecretKeyrings against the CRD schema, the kustomize
# base against the chart, and the sidecar library chart through an app chart.
set -euo pipefail
cd "$(dirname "$0")/.."
k8s_tools=$(./scripts/fetch-k8s-tools.sh)
helm="$k8s_tools/helm"
kubectl="$k8s_tools/kubectl"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
ok() { echo "ok: $*"; }
# A command in an `a && b` list does not stop the script under `set -e`:
# checks are plain commands, or `{ a && b; } || fail "..."`.
fail() { echo "FAIL: $*" >&2; exit 1; }
validate() { # kubernetes-validate everything except the prometheus-operator kinds (CRDs it does not know)
  python3 scripts/split-kinds.py "$1" "$work/valid.yaml" "$work/cr.yaml"
  kubernetes-validate --strict --quiet -k 1.32.0 "$work/valid.yaml"
}

$helm lint --strict charts/encstr >/dev/null
ok "helm lint --strict charts/encstr"
$helm lint --strict charts/encstr-sidecar >/dev/null
ok "helm lint --strict charts/encstr-sidecar"
cmp crds/encstr.yaml charts/encstr/crds/encstr.yaml
ok "chart CRDs = crds/encstr.yaml"

$helm template encstr charts/encstr -n encstr --include-crds > "$work/default.yaml"
validate "$work/default.yaml"
ok "default render passes kubernetes-validate --strict"
all_on=(--set serviceMonitor.enabled=true --set prometheusRule.enabled=true --set networkPolicy.enabled=true
        --set dashboard.enabled=true --set replicaCount=2 --set 'backup.configMapNamespaces={encstr}'
        --set-json 'networkPolicy.extraEgress=[{"to":[{"ipBlock":{"cidr":"192.0.2.0/24"}}],"ports":[{"port":443,"protocol":"TCP"}]}]')
$helm template encstr charts/encstr -n encstr "${all_on[@]}" > "$work/all.yaml"
validate "$work/all.yaml"
ok "every toggle on passes kubernetes-validate --strict"
{ grep -q '^kind: PodDisruptionBudget' "$work/all.yaml" && grep -q '^kind: ServiceMonitor' "$work/cr.yaml" \
  && grep -q '^kind: PrometheusRule' "$work/cr.yaml" && grep -q '^kind: NetworkPolicy' "$work/all.yaml"; } \
  || fail "every toggle on renders the PodDisruptionBudget, ServiceMonitor, PrometheusRule and NetworkPolicy"
for cm in false true; do
  $helm template encstr charts/encstr -n encstr --set webhook.enabled=true --set networkPolicy.enabled=true \
    --set webhook.certManager.enabled=$cm > "$work/webhook-$cm.yaml"
  validate "$work/webhook-$cm.yaml"
  python3 - "$work/webhook-$cm.yaml" "$work/cr.yaml" "$cm" <<'PY'
import sys, yaml
docs = [d for d in yaml.safe_load_all(open(sys.argv[1])) if d]
custom = [d for d in yaml.safe_load_all(open(sys.argv[2])) if d]
cm = sys.argv[3] == "true"
by = {(d["kind"], d["metadata"]["name"]): d for d in docs}
mwc = by[("MutatingWebhookConfiguration", "encstr")]
w = mwc["webhooks"][0]
assert w["objectSelector"] == {"matchLabels": {"encstr.io/inject": "true"}}, w
assert w["namespaceSelector"]["matchExpressions"][0]["values"] == ["kube-system", "encstr"], w
assert (w["failurePolicy"], w["reinvocationPolicy"], w["sideEffects"]) == ("Fail", "IfNeeded", "None"), w
assert w["clientConfig"]["service"] == {"name": "encstr-webhook", "namespace": "encstr", "path": "/inject", "port": 443}
svc = by[("Service", "encstr-webhook")]
assert svc["spec"]["ports"][0]["targetPort"] == "webhook"
args = by[("Deployment", "encstr")]["spec"]["template"]["spec"]["containers"][0]["args"]
assert "--webhook-listen=0.0.0.0:9443" in args and ("--webhook-cert-manager" in args) == cm, args
role = by[("Role", "encstr-webhook")]
netpol = by[("NetworkPolicy", "encstr")]
assert any(p["port"] == "webhook" for r in netpol["spec"]["ingress"] for p in r["ports"]), netpol
if cm:
    assert mwc["metadata"]["annotations"]["cert-manager.io/inject-ca-from"] == "encstr/encstr-webhook"
    assert role["rules"][0]["verbs"] == ["get", "list", "watch"]
    assert ("ClusterRole", "encstr-webhook") not in by
    kinds = sorted(d["kind"] for d in custom)
    assert kinds == ["Certificate", "Issuer"], kinds
    cert = [d for d in custom if d["kind"] == "Certificate"][0]
    assert cert["spec"]["secretName"] == "encstr-webhook-tls"
    assert cert["spec"]["dnsNames"][0] == "encstr-webhook.encstr.svc"
else:
    assert "annotations" not in mwc["metadata"]
    rules = by[("ClusterRole", "encstr-webhook")]["rules"]
    assert rules == [{"apiGroups": ["admissionregistration.k8s.io"], "resources": ["mutatingwebhookconfigurations"],
                      "resourceNames": ["encstr"], "verbs": ["get", "list", "watch", "update"]}], rules
PY
done
ok "webhook: Service, MutatingWebhookConfiguration (objectSelector, namespaces left out), RBAC, NetworkPolicy, cert-manager Certificate"
$helm template encstr charts/encstr -n encstr --set 'rbac.namespaces={team-a,team-b}' > "$work/confined.yaml"
validate "$work/confined.yaml"
python3 - "$work/confined.yaml" <<'PY'
import sys, yaml
docs = [d for d in yaml.safe_load_all(open(sys.argv[1])) if d]
roles = [d for d in docs if d["kind"] == "ClusterRole"]
# Only the aggregated user roles are cluster-wide; the operator gets Roles.
assert sorted(r["metadata"]["name"] for r in roles) == ["encstr-edit", "encstr-view"], roles
assert not [d for d in docs if d["kind"] == "ClusterRoleBinding"]
assert sorted((d["metadata"]["namespace"], d["metadata"]["name"]) for d in docs if d["kind"] == "Role") == \
    [("encstr", "encstr-leader-election"), ("team-a", "encstr"), ("team-b", "encstr")]
args = [d for d in docs if d["kind"] == "Deployment"][0]["spec"]["template"]["spec"]["containers"][0]["args"]
assert "--namespaces=team-a,team-b" in args, args
PY
ok "rbac.namespaces renders Roles only (plus the aggregated user roles)"
grep -q '"\*"' "$work/all.yaml" && { echo "wildcard in RBAC" >&2; exit 1; }
for bad in "replicaCount=two" "bogus=1" "image.pullPolicy=Sometimes" "rbac.namespaces={Bad_NS}"; do
  if $helm template encstr charts/encstr --set "$bad" >/dev/null 2>&1; then echo "values.schema.json accepted $bad" >&2; exit 1; fi
done
ok "values.schema.json rejects wrong types and unknown keys"
yamllint -d '{extends: relaxed, rules: {line-length: {max: 200}, indentation: {spaces: consistent, indent-sequences: whatever}}}' \
  -s "$work/default.yaml" "$work/all.yaml"
ok "yamllint of the rendered chart"

python3 scripts/split-kinds.py "$work/all.yaml" "$work/all-builtin.yaml" "$work/all-cr.yaml"
python3 - "$work/all-cr.yaml" "$work/alerts.rules.yaml" <<'PY'
import sys, yaml
docs = [d for d in yaml.safe_load_all(open(sys.argv[1])) if d and d.get("kind") == "PrometheusRule"]
yaml.safe_dump({"groups": docs[0]["spec"]["groups"]}, open(sys.argv[2], "w"))
PY
promtool check rules "$work/alerts.rules.yaml" >/dev/null
ok "promtool check rules"
cp charts/encstr/tests/alerts_test.yaml "$work/"
(cd "$work" && promtool test rules alerts_test.yaml >/dev/null)
ok "promtool test rules (every alert)"
python3 - <<'PY'
import json, re
d = json.load(open("charts/encstr/dashboards/encstr.json"))
exprs = " ".join(t["expr"] for p in d["panels"] for t in p.get("targets", []))
known = {"encstr_decrypt_failures_total", "encstr_renders_total", "encstr_last_render_success_timestamp_seconds",
         "encstr_plaintext_values", "encstr_keyring_primary_key_age_seconds", "encstr_keyring_keys",
         "encstr_keyring_targets", "encstr_keyring_rotations_total", "encstr_keyring_keys_pruned_total",
         "encstr_keyring_prune_blocked_keys", "encstr_operator_reconciliations_total",
         "encstr_operator_reconcile_duration_seconds_bucket"}
used = set(re.findall(r"encstr_[a-z_]+", exprs))
assert used <= known, used - known
assert d["uid"] and d["panels"], "dashboard"
PY
grep -q 'grafana_dashboard: "1"' "$work/all.yaml"
ok "dashboard JSON and its ConfigMap"

python3 - crds/encstr.yaml deploy/examples/*secretkeyring-*.yaml <<'PY'
import sys, yaml, jsonschema
def strip(s):  # Kubernetes extensions are not JSON Schema keywords
    if isinstance(s, dict):
        return {k: strip(v) for k, v in s.items() if not k.startswith("x-kubernetes-")}
    if isinstance(s, list):
        return [strip(v) for v in s]
    return s
validators = {crd["spec"]["names"]["kind"]: jsonschema.Draft7Validator(strip(crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]))
              for crd in yaml.safe_load_all(open(sys.argv[1])) if crd}
assert set(validators) == {"SecretKeyring", "ClusterSecretKeyring"}, validators
seen = set()
for path in sys.argv[2:]:
    for doc in yaml.safe_load_all(open(path)):
        seen.add(doc["kind"])
        errors = sorted(validators[doc["kind"]].iter_errors(doc), key=str)
        assert not errors, f"{path}: {errors[0].message}"
assert seen == set(validators), f"examples of both kinds: {seen}"
bad = {"apiVersion": "encstr.io/v1alpha1", "kind": "ClusterSecretKeyring", "metadata": {"name": "x"},
       "spec": {"rotation": {"every": "90 days"}, "retention": {"maxKeys": 0}, "deletionPolicy": "Maybe"}}
assert len(list(validators["ClusterSecretKeyring"].iter_errors(bad))) == 3, "the schema rejects a bad duration, maxKeys 0 and an unknown policy"
PY
ok "example SecretKeyrings and ClusterSecretKeyrings validate against the CRD schemas (and bad ones do not)"

$kubectl kustomize deploy/ > "$work/kustomize.yaml"
validate "$work/kustomize.yaml"
python3 scripts/compare-manifests.py "$work/kustomize.yaml" "$work/default.yaml"
ok "kubectl kustomize deploy/ = the chart's default install"
mkdir -p "$work/kz"
rel=$(realpath --relative-to="$work/kz" deploy)
printf 'resources: [%s]\ncomponents: [%s/webhook]\n' "$rel" "$rel" > "$work/kz/kustomization.yaml"
$kubectl kustomize "$work/kz" > "$work/kustomize-webhook.yaml"
$helm template encstr charts/encstr -n encstr --include-crds --set webhook.enabled=true > "$work/webhook-default.yaml"
python3 scripts/compare-manifests.py "$work/kustomize-webhook.yaml" "$work/webhook-default.yaml"
ok "kustomize deploy/ with the deploy/webhook component = the chart with webhook.enabled=true"

$helm dependency build deploy/examples/app-chart >/dev/null
$helm lint --strict deploy/examples/app-chart >/dev/null
no_notify=(--set encstr.notify.signal= --set encstr.notify.process= --set encstr.notify.debounce=)
$helm template demo deploy/examples/app-chart > "$work/app-native.yaml"
$helm template demo deploy/examples/app-chart --set encstr.mode=classic "${no_notify[@]}" > "$work/app-classic.yaml"
$helm template demo deploy/examples/app-chart "${no_notify[@]}" --set encstr.notify.url=http://127.0.0.1:8080/-/reload > "$work/app-url.yaml"
for f in app-native app-classic app-url; do
  kubernetes-validate --strict --quiet -k 1.32.0 "$work/$f.yaml"
done
{ grep -q 'restartPolicy: Always' "$work/app-native.yaml" && ! grep -q 'restartPolicy: Always' "$work/app-classic.yaml"; } \
  || fail "restartPolicy: Always in native mode only"
{ grep -q 'shareProcessNamespace: true' "$work/app-native.yaml" && grep -q -- '- --notify-signal=HUP' "$work/app-native.yaml" \
  && grep -q -- '- --notify-process=print-agent' "$work/app-native.yaml" && grep -q -- '- --notify-debounce=2s' "$work/app-native.yaml"; } \
  || fail "native mode with notify.signal: shareProcessNamespace and the --notify-* arguments"
{ ! grep -q 'shareProcessNamespace' "$work/app-url.yaml" && grep -q -- '- --notify-url=http://127.0.0.1:8080/-/reload' "$work/app-url.yaml"; } \
  || fail "notify.url: --notify-url without shareProcessNamespace"
{ ! grep -q -- '--notify' "$work/app-classic.yaml" && ! grep -q 'shareProcessNamespace' "$work/app-classic.yaml"; } \
  || fail "classic mode: no notify arguments, no shareProcessNamespace"
for bad in "encstr.mode=classic" "encstr.notify.process=" "encstr.notify.signal="; do
  if $helm template demo deploy/examples/app-chart --set "$bad" >/dev/null 2>&1; then echo "library accepted notify with $bad" >&2; exit 1; fi
done
ok "notify: signal sets shareProcessNamespace, url does not; classic mode and half a signal are refused"
if $helm template demo deploy/examples/app-chart --set encstr.keyringSecret= >/dev/null 2>&1; then echo "library accepted a missing keyringSecret" >&2; exit 1; fi
ok "app chart with the encstr-sidecar library (native and classic) passes kubernetes-validate --strict"
