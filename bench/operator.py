#!/usr/bin/env python3
"""Operator benchmarks against the tests/ API server (not run in CI).

  python3 bench/operator.py         # builds release binaries first

The operator runs as its own user (`encstr-operator`, in system:masters), so
the server's per-user request ledger (`/__test/requests`, field `usage`)
counts exactly the operator's requests.

1. fan-out: one ClusterSecretKeyring selecting 10,000 namespaces: seconds
   until every copy exists and the status says so, and the operator's API
   requests per copy (target <= 2);
2. peak RSS: then 1,000 SecretKeyrings (one in each of 1,000 of those
   namespaces): with 10,000 namespaces, 1,001 keyrings and 11,001 managed
   Secrets, the operator's peak RSS (VmHWM; target <= 64 MiB);
3. idle resync: a fresh server; one ClusterSecretKeyring with 1,000 targets
   and retention enabled, one key still in use (PruneBlocked); with
   `--resync 2s --usage-scan-interval 10s`, over 30 s: writes other than
   the Lease (target 0), reconciles, and usage scans (rate-limited);
4. usage scan: 10,000 ConfigMaps of 10 KiB in those targets; the operator's
   RSS growth during a scan (VmHWM after the scan minus VmRSS before it,
   with the high-water mark reset through /proc/PID/clear_refs; target
   <= 16 MiB);
5. big objects: a fresh server; one namespace holding BENCH_BIG (default
   100) Secrets and as many ConfigMaps of about 1 MiB each (the API's
   largest), and BENCH_BIG_KEYRINGS (default 5) SecretKeyrings there, each
   with a key retention wants gone that a token in the last Secret still
   uses; with `--resync 2s --usage-scan-interval 5s`, over 30 s: the
   operator's peak RSS (VmHWM) against the chart's memory limit (128 MiB;
   target: at most half of it), and scans of the namespace per interval
   for all the keyrings together (target 1, not one per keyring).

BENCH_NAMESPACES (default 10000) and BENCH_KEYRINGS (default 1000) scale it;
BENCH_ONLY=fanout, BENCH_ONLY=idle or BENCH_ONLY=big runs one part.
BENCH_OPERATOR_BIN runs another encstr-operator binary (an older build, to
compare).
"""
import base64
import http.client
import json
import os
import re
import socket
import ssl
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TARGET = os.path.join(os.environ.get("CARGO_TARGET_DIR") or os.path.join(ROOT, "target"), "release")
NAMESPACES = int(os.environ.get("BENCH_NAMESPACES", "10000"))
KEYRINGS = int(os.environ.get("BENCH_KEYRINGS", "1000"))
BIG = int(os.environ.get("BENCH_BIG", "100"))
BIG_KEYRINGS = int(os.environ.get("BENCH_BIG_KEYRINGS", "5"))
CHART_LIMIT_MIB = 128  # charts/encstr/values.yaml: resources.limits.memory
SCAN_PAGE = int(os.environ.get("BENCH_SCAN_PAGE", "20"))  # operator/src/usage.rs: SCAN_PAGE (100 before it)
OPERATOR_USER = "encstr-operator"
OPERATOR_TOKEN = "bench-operator-token"
GROUP = "/apis/encstr.io/v1alpha1"


def build():
    subprocess.run(["cargo", "build", "--release", "--quiet", "-p", "encstr", "-p", "encstr-operator", "-p", "encstr-tests"],
                   cwd=ROOT, check=True)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Api:
    """HTTPS with keep-alive, as the admin of the server's kubeconfig."""

    def __init__(self, port, kubeconfig):
        text = open(kubeconfig).read()
        field = lambda k: next(l.split(": ", 1)[1].strip() for l in text.splitlines() if l.strip().startswith(k + ":"))
        self.port = port
        self.token = field("token")
        self.tls = ssl.create_default_context(cadata=base64.b64decode(field("certificate-authority-data")).decode())
        self.conn = None

    def call(self, method, path, body=None, ctype="application/json", ok=(200, 201)):
        data = json.dumps(body).encode() if body is not None else None
        headers = {"Authorization": f"Bearer {self.token}"}
        if data is not None:
            headers["Content-Type"] = ctype
        for attempt in range(2):
            if self.conn is None:
                self.conn = http.client.HTTPSConnection("127.0.0.1", self.port, timeout=120, context=self.tls)
            try:
                self.conn.request(method, path, body=data, headers=headers)
                r = self.conn.getresponse()
                text = r.read()
                break
            except (http.client.HTTPException, OSError):
                self.conn.close()
                self.conn = None
                if attempt:
                    raise
        if r.status not in ok:
            raise RuntimeError(f"{method} {path}: {r.status} {text[:300]}")
        return json.loads(text) if text else None

    def operator_requests(self):
        """The operator's requests by (verb, resource), leases excluded."""
        out = {}
        for row in self.call("GET", "/__test/requests")["usage"]:
            u = row["usage"]
            if u["user"] != OPERATOR_USER or u["resource"] == "leases":
                continue
            out[(u["verb"], u["resource"])] = out.get((u["verb"], u["resource"]), 0) + row["count"]["requests"]
        return out

    def reset(self):
        self.call("DELETE", "/__test/requests")


def writes(reqs):
    return sum(n for (verb, _), n in reqs.items() if verb in ("create", "update", "patch", "delete", "deletecollection"))


def wait(what, pred, timeout=900, every=0.5):
    start = time.time()
    while time.time() - start < timeout:
        v = pred()
        if v:
            return v
        time.sleep(every)
    raise SystemExit(f"timed out waiting for {what}")


def proc_kib(pid, field):
    with open(f"/proc/{pid}/status") as s:
        return int(next(l for l in s if l.startswith(field + ":")).split()[1])


class Server:
    def __init__(self, work):
        self.work = work
        self.kubeconfig = os.path.join(work, "kubeconfig")
        tokens = os.path.join(work, "tokens.csv")
        with open(tokens, "w") as f:
            f.write(f'{OPERATOR_TOKEN},{OPERATOR_USER},op-uid,"system:masters"\n')
        self.proc = subprocess.Popen([os.path.join(TARGET, "kube-test-apiserver"), "--port", "0", "--kubeconfig", self.kubeconfig,
                                      "--token-auth-file", tokens],
                                     stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        self.api = Api(int(self.proc.stdout.readline()), self.kubeconfig)
        text = open(self.kubeconfig).read()
        self.op_kubeconfig = os.path.join(work, "operator.kubeconfig")
        with open(self.op_kubeconfig, "w") as f:
            f.write(re.sub(r"token: .*", f"token: {OPERATOR_TOKEN}", text))
        env = dict(os.environ, KUBECONFIG=self.kubeconfig, KUBECACHEDIR=os.path.join(work, "cache"))
        subprocess.run(["kubectl", "apply", "--server-side", "-f", os.path.join(ROOT, "crds/encstr.yaml")], env=env, check=True,
                       capture_output=True)
        self.api.call("POST", "/api/v1/namespaces", {"metadata": {"name": "encstr"}})

    def namespaces(self, n, labels):
        for i in range(n):
            self.api.call("POST", "/api/v1/namespaces", {"metadata": {"name": f"t{i:05}", "labels": labels}})

    def operator(self, *args):
        port = free_port()
        env = dict(os.environ, KUBECONFIG=self.op_kubeconfig, RUST_LOG="warn")
        wrapper = os.environ.get("BENCH_OPERATOR_WRAPPER", "").split()  # e.g. "heaptrack -o /tmp/op"
        binary = os.environ.get("BENCH_OPERATOR_BIN") or os.path.join(TARGET, "encstr-operator")
        proc = subprocess.Popen([*wrapper, binary, "run", "--listen", f"127.0.0.1:{port}", "--identity", "bench",
                                 "--lease-namespace", "encstr", "--cluster-resource-namespace", "encstr", *args],
                                env=env, stdout=subprocess.DEVNULL, stderr=open(os.path.join(self.work, "operator.log"), "a"))
        proc.port = port
        return proc

    def stop(self, *procs):
        for p in (*procs, self.proc):
            p.terminate()
            p.wait()


def metric(port, name):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    c.request("GET", "/metrics")
    text = c.getresponse().read().decode()
    c.close()
    return sum(float(l.split()[-1]) for l in text.splitlines() if l.startswith(name) and not l.startswith("#"))


def leads(op):
    if op.poll() is not None:
        raise SystemExit("the operator exited")
    try:
        return metric(op.port, "encstr_operator_leader") == 1
    except OSError:
        return False


def cskr(api, name, spec):
    api.call("POST", f"{GROUP}/clustersecretkeyrings", {"apiVersion": "encstr.io/v1alpha1", "kind": "ClusterSecretKeyring",
                                                        "metadata": {"name": name}, "spec": spec})


def status(api, name):
    return api.call("GET", f"{GROUP}/clustersecretkeyrings/{name}").get("status") or {}


def condition(st, kind):
    return next((c for c in st.get("conditions", []) if c["type"] == kind), {})


def fanout_and_rss(work):
    s = Server(work)
    api = s.api
    t = time.time()
    s.namespaces(NAMESPACES, {"fanout": "yes"})
    print(f"(set-up: {NAMESPACES} namespaces created in {time.time() - t:.0f} s)", flush=True)
    op = s.operator()
    try:
        wait("the operator leads", lambda: leads(op))
        api.reset()
        start = time.time()
        cskr(api, "fanout", {"targets": {"namespaceSelector": {"matchLabels": {"fanout": "yes"}}}})
        wait("every copy", lambda: status(api, "fanout").get("syncedTargets") == f"{NAMESPACES}/{NAMESPACES}", every=0.2)
        fanout = time.time() - start
        reqs = api.operator_requests()
        copies = len(api.call("GET", "/api/v1/secrets?labelSelector=encstr.io/role%3Dcopy")["items"])
        assert copies == NAMESPACES, copies
        fanout_hwm, fanout_rss = proc_kib(op.pid, "VmHWM") / 1024, proc_kib(op.pid, "VmRSS") / 1024

        start = time.time()
        for i in range(KEYRINGS):
            api.call("POST", f"{GROUP}/namespaces/t{i:05}/secretkeyrings",
                     {"apiVersion": "encstr.io/v1alpha1", "kind": "SecretKeyring", "metadata": {"name": "app"}, "spec": {}})

        def all_ready():
            items = api.call("GET", f"{GROUP}/secretkeyrings")["items"]
            return sum(1 for k in items if condition(k.get("status") or {}, "Ready").get("status") == "True") == KEYRINGS
        wait(f"{KEYRINGS} keyrings ready", all_ready, every=1)
        many = time.time() - start
        managed = len(api.call("GET", "/api/v1/secrets?labelSelector=encstr.io/role")["items"])
        hwm = proc_kib(op.pid, "VmHWM") / 1024
    finally:
        s.stop(op)
    total = sum(reqs.values())
    print(f"1. 1 ClusterSecretKeyring -> {NAMESPACES} namespaces: every copy and the status in {fanout:.1f} s; "
          f"{total} operator requests = {total / NAMESPACES:.3f} per copy (target <= 2); "
          f"{writes(reqs)} writes; by verb: {sorted(reqs.items())}; operator RSS {fanout_rss:.1f} MiB, peak {fanout_hwm:.1f} MiB")
    print(f"2. {KEYRINGS} SecretKeyrings reconciled in {many:.1f} s; with {NAMESPACES} namespaces, {KEYRINGS + 1} keyrings and "
          f"{managed} managed Secrets the operator's peak RSS is {hwm:.1f} MiB (target <= 64 MiB)")


def idle_and_scan(work):
    s = Server(work)
    api = s.api
    n = KEYRINGS
    s.namespaces(n, {"idle": "yes"})
    op = s.operator("--resync", "2s", "--usage-scan-interval", "10s")
    try:
        wait("the operator leads", lambda: leads(op))
        cskr(api, "idle", {"targets": {"namespaceSelector": {"matchLabels": {"idle": "yes"}}},
                           "rotation": {"promotionDelay": "0s"}, "retention": {"maxKeys": 1, "minDecryptOnlyAge": "1s"}})
        wait("every copy", lambda: status(api, "idle").get("syncedTargets") == f"{n}/{n}")
        # A token of the first key in t00000 keeps that key in use.
        ring = base64.b64decode(api.call("GET", "/api/v1/namespaces/t00000/secrets/idle")["data"]["keyring"])
        path = os.path.join(work, "keyring")
        with open(os.open(path, os.O_WRONLY | os.O_CREAT, 0o600), "wb") as f:
            f.write(ring)
        token = subprocess.run([os.path.join(TARGET, "encstr"), "encrypt", "--name", "db.password", "--keyring", path],
                               input=b"bench", capture_output=True, check=True).stdout.decode().strip()
        os.unlink(path)
        api.call("POST", "/api/v1/namespaces/t00000/configmaps",
                 {"metadata": {"name": "app"}, "data": {"app.properties": f"db.password = {token}\n"}})
        api.call("PATCH", f"{GROUP}/clustersecretkeyrings/idle", {"metadata": {"annotations": {"encstr.io/rotate": "1"}}},
                 ctype="application/merge-patch+json")
        wait("PruneBlocked", lambda: condition(status(api, "idle"), "PruneBlocked").get("status") == "True")
        time.sleep(12)  # the last scan's result is in the status
        api.reset()
        reconciles = metric(op.port, "encstr_operator_reconciliations_total")
        time.sleep(30)
        reconciles = metric(op.port, "encstr_operator_reconciliations_total") - reconciles
        reqs = api.operator_requests()
        scans = reqs.get(("list", "configmaps"), 0) / (n + 1)  # one list per namespace (+ the master's)

        # 10,000 ConfigMaps of 10 KiB across the targets.
        body = "".join(f"app.setting.{i:04} = {'x' * 80}\n" for i in range(100))[:10 * 1024 - 200] + f"db.password = {token}\n"
        per_ns = max(1, 10_000 // n)
        # Scans fail while the ConfigMaps are created, so that none has run
        # over them before the measurement starts.
        api.call("POST", "/__test/faults", {"verb": "list", "resource": "configmaps", "times": 1_000_000, "status": 500})
        t = time.time()
        for i in range(n):
            for j in range(per_ns):
                api.call("POST", f"/api/v1/namespaces/t{i:05}/configmaps",
                         {"metadata": {"name": f"config-{j:02}"}, "data": {"app.properties": body}})
        print(f"(set-up: {n * per_ns} ConfigMaps of {len(body)} bytes created in {time.time() - t:.0f} s)", flush=True)
        time.sleep(3)  # let any failing scan in flight end
        lists = lambda: api.operator_requests().get(("list", "configmaps"), 0)
        with open(f"/proc/{op.pid}/clear_refs", "w") as f:
            f.write("5")  # reset VmHWM to the current RSS
        before = proc_kib(op.pid, "VmRSS") / 1024
        seen = lists()
        api.call("DELETE", "/__test/faults")
        wait("a complete scan", lambda: lists() >= seen + n * (per_ns // SCAN_PAGE + 1) + 1, every=0.2)
        time.sleep(0.5)
        peak = proc_kib(op.pid, "VmHWM") / 1024
        final = condition(status(api, "idle"), "PruneBlocked")
    finally:
        s.stop(op)
    print(f"3. idle, {n} targets, retention on, one key in use: over 30 s with --resync 2s, {reconciles:.0f} reconciles, "
          f"{writes(reqs)} writes besides the Lease (target 0), {scans:.1f} usage scans (--usage-scan-interval 10s); "
          f"requests by verb: {sorted(reqs.items())}")
    print(f"4. usage scan over {n * per_ns} ConfigMaps of 10 KiB: RSS {before:.1f} MiB before, peak {peak:.1f} MiB during, "
          f"growth {peak - before:.1f} MiB (target <= 16 MiB); PruneBlocked={final.get('status')}")


def big_objects(work):
    s = Server(work)
    api = s.api
    ns = "big"
    api.call("POST", "/api/v1/namespaces", {"metadata": {"name": ns}})
    op = s.operator("--resync", "2s", "--usage-scan-interval", "5s")
    try:
        wait("the operator leads", lambda: leads(op))
        path = os.path.join(work, "keyring")
        tokens = []
        names = [f"app{i}" for i in range(BIG_KEYRINGS)]
        for name in names:
            api.call("POST", f"{GROUP}/namespaces/{ns}/secretkeyrings",
                     {"apiVersion": "encstr.io/v1alpha1", "kind": "SecretKeyring", "metadata": {"name": name},
                      "spec": {"rotation": {"promotionDelay": "0s"}, "retention": {"maxKeys": 1, "minDecryptOnlyAge": "0s"}}})
            secret = wait("the master", lambda: api.call("GET", f"/api/v1/namespaces/{ns}/secrets/{name}", ok=(200, 404)).get("data"))
            with open(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "wb") as f:
                f.write(base64.b64decode(secret["keyring"]))
            tokens.append(subprocess.run([os.path.join(TARGET, "encstr"), "encrypt", "--name", "db.password", "--keyring", path],
                                         input=b"bench", capture_output=True, check=True).stdout.decode().strip())
            os.unlink(path)
        # About 1 MiB each (the API's limit is 1 MiB of data): random bytes
        # in Secrets, text in ConfigMaps; the tokens in the last Secret.
        mib = 1024 * 1024 - 4096
        t = time.time()
        for i in range(BIG):
            data = {"blob": base64.b64encode(os.urandom(mib)).decode()}
            if i == BIG - 1:
                data = {"blob": base64.b64encode(os.urandom(mib - 4096) + "\n".join(tokens).encode()).decode()}
            api.call("POST", f"/api/v1/namespaces/{ns}/secrets", {"metadata": {"name": f"big-{i:03}"}, "data": data})
            api.call("POST", f"/api/v1/namespaces/{ns}/configmaps",
                     {"metadata": {"name": f"big-{i:03}"}, "data": {"app.properties": "x = " + "y" * (mib - 8)}})
        print(f"(set-up: {BIG} Secrets and {BIG} ConfigMaps of {mib / 1048576:.2f} MiB created in {time.time() - t:.0f} s)",
              flush=True)
        idle = proc_kib(op.pid, "VmRSS") / 1024
        for name in names:
            api.call("PATCH", f"{GROUP}/namespaces/{ns}/secretkeyrings/{name}", {"metadata": {"annotations": {"encstr.io/rotate": "1"}}},
                     ctype="application/merge-patch+json")
        blocked = lambda: all(condition(api.call("GET", f"{GROUP}/namespaces/{ns}/secretkeyrings/{n}").get("status") or {},
                                        "PruneBlocked").get("status") == "True" for n in names)
        wait("PruneBlocked everywhere", blocked, timeout=300)
        api.reset()
        pages_per_scan = 2 * (BIG // SCAN_PAGE + 1)
        time.sleep(30)
        reqs = api.operator_requests()
        pages = reqs.get(("list", "configmaps"), 0) + reqs.get(("list", "secrets"), 0)
        peak = proc_kib(op.pid, "VmHWM") / 1024
        still = blocked()
        alive = op.poll() is None
    finally:
        s.stop(op)
    scans = pages / pages_per_scan
    print(f"5. {BIG} Secrets + {BIG} ConfigMaps of ~1 MiB in one namespace, {BIG_KEYRINGS} SecretKeyrings there, each with a key "
          f"in use: operator peak RSS {peak:.1f} MiB = {peak / CHART_LIMIT_MIB:.2f} of the chart's {CHART_LIMIT_MIB} MiB limit "
          f"(target <= 0.5; RSS {idle:.1f} MiB before any scan); over 30 s with --usage-scan-interval 5s: {pages} list pages = "
          f"{scans:.1f} scans of the namespace = {scans / 6:.2f} per interval for {BIG_KEYRINGS} keyrings (target 1); "
          f"still blocked: {still}; operator alive: {alive}")


def main():
    build()
    with tempfile.TemporaryDirectory() as work:
        os.mkdir(os.path.join(work, "a"))
        os.mkdir(os.path.join(work, "b"))
        os.mkdir(os.path.join(work, "c"))
        only = os.environ.get("BENCH_ONLY", "")  # "fanout", "idle" or "big" to run one part
        if only in ("", "fanout"):
            fanout_and_rss(os.path.join(work, "a"))
        if only in ("", "idle"):
            idle_and_scan(os.path.join(work, "b"))
        if only in ("", "big"):
            big_objects(os.path.join(work, "c"))


if __name__ == "__main__":
    sys.exit(main())
