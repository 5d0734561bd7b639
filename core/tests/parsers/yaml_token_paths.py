"""For each YAML document of a JSON list (argv[1]), print the ENCSTR v1 §4
name of every string value PyYAML (a YAML 1.1 reader, as many apps use)
reads that starts with ENCSTR:, or null when PyYAML cannot read it. The
differential test compares these names with encstr's own."""
import json
import sys
import unicodedata

import yaml


def bare(k):
    return k != "" and not any(c in '.[]"\\' or unicodedata.category(c) == "Cc" for c in k)


def key(parent, k):
    if not isinstance(k, str):
        k = json.dumps(k) if k is None or isinstance(k, bool) else str(k)
    if bare(k):
        return (parent + "." if parent else "") + k
    return parent + "[" + json.dumps(k, ensure_ascii=False) + "]"


def walk(node, name, out):
    if isinstance(node, dict):
        for k, v in node.items():
            walk(v, key(name, k), out)
    elif isinstance(node, list):
        for i, v in enumerate(node):
            walk(v, f"{name}[{i}]", out)
    elif isinstance(node, str) and node.startswith("ENCSTR:"):
        out.append([name, node.rstrip("\n")])


with open(sys.argv[1], encoding="utf-8") as f:
    docs = json.load(f)
results = []
for doc in docs:
    try:
        data = yaml.safe_load(doc)
    except Exception:
        results.append(None)
        continue
    out = []
    walk(data, "", out)
    results.append(sorted(out))
json.dump(results, sys.stdout, ensure_ascii=True)
