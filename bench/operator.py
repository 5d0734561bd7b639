#!/usr/bin/env python3
"""Operator benchmarks against the tests/ API server (not run in CI).

  python3 bench/operator.py         # builds release binaries first

- one SecretKeyring targeting 1,000 namespaces (by label selector): seconds
  until every copy exists, and the API requests the operator made (from the
  test server's counters);
- steady state: with `--resync 2s`, write requests over about four periodic
  resyncs of the 1,000-namespace keyring, besides lease renewals: must be 0;
- 1,000 SecretKeyrings (each with its own target namespace): peak RSS of the
  operator (VmHWM) once all are reconciled.
"""
import base64
import http.client
import json
import os
import ssl
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TARGET = os.path.join(ROOT, "target/release")
N = int(os.environ.get("BENCH_N", "1000"))


def build():
    subprocess.run(["cargo", "build", "--release", "--quiet", "-p", "encstr-operator", "-p", "encstr-tests"], cwd=ROOT, check=True)


class Api:
    """HTTPS as the admin of the server's kubeconfig (its CA and token)."""

    def __init__(self, port, kubeconfig):
        text = open(kubeconfig).read()
        field = lambda k: next(l.split(": ", 1)[1].strip() for l in text.splitlines() if l.strip().startswith(k + ":"))
        self.port = port
        self.token = field("token")
        self.tls = ssl.create_default_context(cadata=base64.b64decode(field("certificate-authority-data")).decode())

    def call(self, method, path, body=None, ctype="application/json"):
        c = http.client.HTTPSConnection("127.0.0.1", self.port, timeout=60, context=self.tls)
        data = json.dumps(body) if body is not None else None
        headers = {"Authorization": f"Bearer {self.token}"}
        if data:
            headers["Content-Type"] = ctype
        c.request(method, path, body=data, headers=headers)
        r = c.getresponse()
        text = r.read()
        c.close()
        if r.status >= 400:
            raise RuntimeError(f"{method} {path}: {r.status} {text[:200]}")
        return json.loads(text) if text else None

    def writes(self):
        """(writes excluding leader-election lease renewals, all requests, the writes)."""
        r = self.call("GET", "/__test/requests")
        counts = r["counts"]
        writes = [x for x in r["recent"] if x["verb"] in ("create", "update", "patch", "delete") and x["resource"] != "leases"]
        return len(writes), sum(c["count"] for c in counts), [x["line"] for x in writes]


def wait(what, pred, timeout=600):
    start = time.time()
    while time.time() - start < timeout:
        v = pred()
        if v:
            return v
        time.sleep(0.2)
    raise SystemExit(f"timed out waiting for {what}")


def copies(api, label):
    return len(api.call("GET", f"/api/v1/secrets?labelSelector=encstr.io/keyring%3D{label}")["items"])


def main():
    build()
    work = tempfile.mkdtemp()
    kubeconfig = os.path.join(work, "kubeconfig")
    server = subprocess.Popen([os.path.join(TARGET, "kube-test-apiserver"), "--port", "0", "--kubeconfig", kubeconfig],
                              stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    api = Api(int(server.stdout.readline()), kubeconfig)
    env = dict(os.environ, KUBECONFIG=kubeconfig, KUBECACHEDIR=os.path.join(work, "cache"))
    subprocess.run(["kubectl", "apply", "--server-side", "-f", os.path.join(ROOT, "crds/encstr.yaml")], env=env, check=True, capture_output=True)
    api.call("POST", "/api/v1/namespaces", {"metadata": {"name": "platform"}})
    for i in range(N):
        api.call("POST", "/api/v1/namespaces", {"metadata": {"name": f"t{i:04}", "labels": {"encstr.io/keyring": "big"}}})
    op = subprocess.Popen([os.path.join(TARGET, "encstr-operator"), "run", "--listen", "127.0.0.1:0", "--identity", "bench",
                           "--lease-namespace", "platform", "--resync", "2s"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        time.sleep(1)
        api.call("DELETE", "/__test/requests")
        start = time.time()
        api.call("POST", "/apis/encstr.io/v1alpha1/namespaces/platform/secretkeyrings",
                 {"apiVersion": "encstr.io/v1alpha1", "kind": "SecretKeyring", "metadata": {"name": "big"},
                  "spec": {"targets": {"namespaceSelector": {"matchLabels": {"encstr.io/keyring": "big"}}}}})
        wait("all copies", lambda: copies(api, "platform.big") == N + 1)
        fanout = time.time() - start
        wait("status", lambda: (api.call("GET", "/apis/encstr.io/v1alpha1/namespaces/platform/secretkeyrings/big").get("status") or {}).get("syncedTargets") == f"{N}/{N}")
        writes, total, _ = api.writes()

        # Steady state: drop every watch; the operator re-lists and reconciles.
        time.sleep(2)
        api.call("DELETE", "/__test/requests")
        time.sleep(9)  # the operator runs with --resync 2s: about four full resyncs
        steady_writes, steady_total, steady_lines = api.writes()
        recent = api.call("GET", "/__test/requests")["recent"]
        master_reads = sum(1 for x in recent if x["verb"] == "get" and x["resource"] == "secrets" and x["name"] == "big")
        if master_reads < 1:
            for x in recent:
                print(x["code"], x["line"])
            raise SystemExit("no resync reconcile happened")

        # 1,000 SecretKeyrings, one target namespace each.
        start = time.time()
        for i in range(N):
            api.call("POST", "/apis/encstr.io/v1alpha1/namespaces/platform/secretkeyrings",
                     {"apiVersion": "encstr.io/v1alpha1", "kind": "SecretKeyring", "metadata": {"name": f"k{i:04}"},
                      "spec": {"targets": {"namespaces": [f"t{i:04}"]}}})
        def all_ready():
            items = api.call("GET", "/apis/encstr.io/v1alpha1/namespaces/platform/secretkeyrings")["items"]
            return sum(1 for s in items if (s.get("status") or {}).get("syncedTargets") == "1/1") == N
        wait("1,000 keyrings reconciled", all_ready)
        many = time.time() - start
        with open(f"/proc/{op.pid}/status") as s:
            hwm = int(next(l for l in s if l.startswith("VmHWM")).split()[1]) / 1024
    finally:
        op.terminate()
        server.terminate()
        op.wait()
        server.wait()
    print(f"1 SecretKeyring -> {N} namespaces: all copies in {fanout:.2f} s; {total} API requests, {writes} of them writes")
    print(f"steady state (periodic resyncs, nothing changed): {steady_writes} write requests "
          f"besides leader-election lease renewals ({steady_total} requests in all, {master_reads} resync reconcile(s)) {steady_lines}")
    print(f"{N} SecretKeyrings created and reconciled in {many:.1f} s; operator peak RSS {hwm:.1f} MiB (target <= 64 MiB)")


if __name__ == "__main__":
    sys.exit(main())
