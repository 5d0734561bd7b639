"""Split a multi-document manifest: built-in kinds to one file (for
kubernetes-validate), prometheus-operator and cert-manager custom resources
to another."""
import sys

import yaml

docs = [d for d in yaml.safe_load_all(open(sys.argv[1])) if d]
custom = [d for d in docs if d.get("apiVersion", "").startswith(("monitoring.coreos.com/", "cert-manager.io/"))]
builtin = [d for d in docs if d not in custom]
yaml.safe_dump_all(builtin, open(sys.argv[2], "w"), sort_keys=False)
yaml.safe_dump_all(custom, open(sys.argv[3], "w"), sort_keys=False)
