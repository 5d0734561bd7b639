"""Check that two manifests hold the same objects (kind, namespace, name and
content), ignoring Helm's bookkeeping labels. Used to keep deploy/ (kustomize)
identical to what the Helm chart installs by default."""
import sys

import yaml

HELM_LABELS = {"helm.sh/chart", "app.kubernetes.io/managed-by"}


def load(path):
    objs = {}
    for d in yaml.safe_load_all(open(path)):
        if not d:
            continue
        for where in (d.get("metadata", {}), d.get("spec", {}).get("template", {}).get("metadata", {})):
            labels = where.get("labels") or {}
            for k in HELM_LABELS:
                labels.pop(k, None)
        key = (d["kind"], d["metadata"].get("namespace", ""), d["metadata"]["name"])
        objs[key] = d
    return objs


a, b = load(sys.argv[1]), load(sys.argv[2])
if set(a) != set(b):
    sys.exit(f"different objects: only in {sys.argv[1]}: {sorted(set(a) - set(b))}; only in {sys.argv[2]}: {sorted(set(b) - set(a))}")
for k in a:
    if a[k] != b[k]:
        sys.exit(f"{k} differs between {sys.argv[1]} and {sys.argv[2]}")
