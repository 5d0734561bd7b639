#!/usr/bin/env python3
"""Sidecar benchmarks (not run in CI). Prints figures and ratios for BENCHMARKS.md.

  python3 bench/render.py            # builds the static release binary first

- one file of 20,000 values: whole-process `render` and `check`, each as a
  ratio to the floor measured in the same run: the in-process decryption of
  those values (core/examples/decrypt_floor.rs) plus a `cp` of the file;
- render of 100 files x 100 values (10,000 values), wall time, and its ratio
  to `cp -r` of the same tree (the I/O floor);
- start-to-ready (process start until /readyz answers 200) for 100 values;
- peak RSS (VmHWM) of a watching sidecar after 20 re-renders of the 10,000 values;
- size of the stripped static binary.
"""
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = os.path.join(ROOT, "target/x86_64-unknown-linux-gnu/release/encstr")
RUNS = 15


def sh(*args, **kw):
    return subprocess.run(args, check=True, capture_output=True, **kw)


FLOOR = os.path.join(ROOT, "target/x86_64-unknown-linux-gnu/release/examples/decrypt_floor")


def build():
    env = dict(os.environ, RUSTFLAGS="-C target-feature=+crt-static")
    sh("cargo", "build", "--release", "--quiet", "--target", "x86_64-unknown-linux-gnu", "-p", "encstr", cwd=ROOT, env=env)
    sh("cargo", "build", "--release", "--quiet", "--target", "x86_64-unknown-linux-gnu", "-p", "encstr-core",
       "--example", "decrypt_floor", cwd=ROOT, env=env)


def one_big_file(work, values=20_000):
    """render and check of one file of `values` sealed values, against the floor."""
    keyring = os.path.join(work, "keyring")
    sh(BIN, "keys", "init", "--keyring", keyring)
    src = os.path.join(work, "src")
    os.makedirs(src)
    path = os.path.join(src, "app.properties")
    with open(path, "w") as out:
        out.write("# one big file\n")
        for v in range(values):
            out.write(f"svc.db{v}.password = secret-value-{v}-0123456789abcdef\n")
    sh(BIN, "seal", "--keyring", keyring, path)
    tokens = os.path.join(work, "tokens")
    with open(path) as f, open(tokens, "w") as out:
        for line in f:
            if " = ENCSTR:" in line:
                name, token = line.rstrip("\n").split(" = ", 1)
                out.write(f"{name}\t{token}\n")
    # Interleaved rounds, so that a noisy neighbour slows all four alike.
    decrypt, cp, render, check = [], [], [], []
    for i in range(31):
        decrypt.append(float(sh(FLOOR, keyring, tokens, "1").stdout.split()[0]))
        cp.append(timed(["cp", path, os.path.join(work, f"copy{i}")]))
        render.append(timed([BIN, "render", "--source", src, "--target", os.path.join(work, f"big{i}"),
                             "--keyring", keyring]))
        check.append(timed([BIN, "check", "--keyring", keyring, path]))
        for d in (f"copy{i}", f"big{i}"):
            p = os.path.join(work, d)
            subprocess.run(["rm", "-rf", p], check=True)
    return tuple(statistics.median(x) for x in (decrypt, cp, render, check))


def timed(cmd):
    t = time.perf_counter()
    subprocess.run(cmd, check=True, capture_output=True)
    return time.perf_counter() - t


def make_tree(work, files, values):
    keyring = os.path.join(work, "keyring")
    sh(BIN, "keys", "init", "--keyring", keyring)
    plain = os.path.join(work, "plain")
    os.makedirs(plain)
    for f in range(files):
        with open(os.path.join(plain, f"app{f:03}.properties"), "w") as out:
            out.write(f"# service {f}\n")
            for v in range(values):
                out.write(f"service{f}.db{v}.password = secret-value-{f}-{v}-0123456789abcdef\n")
                out.write(f"service{f}.db{v}.url = jdbc:postgresql://db{v}:5432/app\n")
    src = os.path.join(work, "src")
    shutil.copytree(plain, src)
    sh(BIN, "seal", "--keyring", keyring, *[os.path.join(src, n) for n in sorted(os.listdir(src))])
    return keyring, src


def median_time(cmd_for_run, runs=RUNS):
    times = []
    for i in range(runs):
        cmd = cmd_for_run(i)
        t = time.perf_counter()
        subprocess.run(cmd, check=True, capture_output=True)
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_to_ready(work, keyring, src):
    times = []
    for i in range(RUNS):
        port = free_port()
        target = os.path.join(work, f"ready{i}")
        t = time.perf_counter()
        p = subprocess.Popen([BIN, "render", "--watch", "--listen", f"127.0.0.1:{port}", "--source", src,
                              "--target", target, "--keyring", keyring],
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            while True:
                try:
                    with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=1) as r:
                        if r.status == 200:
                            break
                except OSError:
                    pass
                if time.perf_counter() - t > 10:
                    raise SystemExit("not ready after 10 s")
            times.append(time.perf_counter() - t)
        finally:
            p.terminate()
            p.wait()
    return statistics.median(times)


def peak_rss_watching(work, keyring, src):
    port = free_port()
    p = subprocess.Popen([BIN, "render", "--watch", "--debounce", "10ms", "--listen", f"127.0.0.1:{port}",
                          "--source", src, "--target", os.path.join(work, "watched"), "--keyring", keyring],
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        def renders():
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=1) as r:
                    for line in r.read().decode().splitlines():
                        if line.startswith('encstr_renders_total{result="success"}'):
                            return int(float(line.split()[-1]))
            except OSError:
                return 0
            return 0
        while renders() < 1:
            time.sleep(0.05)
        first = os.path.join(src, sorted(os.listdir(src))[0])
        for i in range(20):
            with open(first, "a") as f:
                f.write(f"# touch {i}\n")
            deadline = time.time() + 10
            while renders() < i + 2 and time.time() < deadline:
                time.sleep(0.02)
        with open(f"/proc/{p.pid}/status") as s:
            status = dict(line.split(":", 1) for line in s if ":" in line)
        return int(status["VmHWM"].split()[0]) / 1024
    finally:
        p.terminate()
        p.wait()


def peak_rss_render(src, target, keyring):
    """Peak RSS (MiB) of one `render` process (its own rusage)."""
    proc = subprocess.Popen([BIN, "render", "--source", src, "--target", target, "--keyring", keyring],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    return usage.ru_maxrss / 1024, proc.returncode


def worst_case_names(work):
    """The memory worst case of names: a ConfigMap-sized (1 MiB) YAML whose
    names add up to just under the budget (8x the file): an explicit key of
    4,000 bytes above as many sealed values as fit. Against the floor: the
    same number of values under short names in a file of the same size."""
    keyring = os.path.join(work, "keyring")
    sh(BIN, "keys", "init", "--keyring", keyring)
    token_src = os.path.join(work, "t.yaml")
    with open(token_src, "w") as f:
        f.write("x: v\n")
    key = "k" * 4000
    # Each value's name is the key plus "[i]" (about 4,006 bytes); the
    # budget is 8 x size + 64 KiB: the values that fit in a 1 MiB file.
    size = 1 << 20
    budget = size * 8 + (64 << 10)
    count = budget // (len(key) + 8) - 16
    line = "  - ENCSTR:" + "A" * 40 + "\n"
    padding = size - len(key) - 8 - count * len(line)
    rows = []
    for name, body in [("worst", f"? {key}\n:\n" + line * count + "#" + "p" * max(padding - 2, 0) + "\n"),
                       ("floor", "".join(f"v{i}: x\n" for i in range(count)) + "#" + "p" * max(size - count * 12, 0) + "\n")]:
        src = os.path.join(work, name)
        os.makedirs(src)
        with open(os.path.join(src, "app.yaml"), "w") as f:
            f.write(body)
        rss, rc = peak_rss_render(src, os.path.join(work, name + "-out"), keyring)
        rows.append((name, os.path.getsize(os.path.join(src, "app.yaml")), rss, rc))
    return count, rows


def main():
    build()
    shm0 = "/dev/shm" if os.path.isdir("/dev/shm") else None
    with tempfile.TemporaryDirectory(dir=shm0) as work:
        count, rows = worst_case_names(work)
    (_, wsize, wrss, wrc), (_, fsize, frss, frc) = rows
    print(f"names worst case, {count} values under a 4,000-byte key, {wsize / 1e6:.2f} MB file: "
          f"peak RSS {wrss:.1f} MiB (exit {wrc}; the tokens are not this keyring's, so the render fails after"
          f" reading every name); floor (short names, {fsize / 1e6:.2f} MB): {frss:.1f} MiB;"
          f" ratio {wrss / frss:.2f}; chart limit 32 MiB: {wrss / 32:.0%} of it", flush=True)
    if os.environ.get("BENCH_ONLY") == "names":
        return 0
    shm = "/dev/shm" if os.path.isdir("/dev/shm") else None
    with tempfile.TemporaryDirectory(dir=shm) as work:
        decrypt, cp1, render1, check1 = one_big_file(work)
    floor = decrypt + cp1
    print(f"one file, 20,000 values: floor = in-process decrypt {decrypt * 1000:.1f} ms + cp {cp1 * 1000:.1f} ms"
          f" = {floor * 1000:.1f} ms")
    print(f"  render (whole process): {render1 * 1000:.1f} ms; ratio to the floor {render1 / floor:.2f} (target <= 2)")
    print(f"  check  (whole process): {check1 * 1000:.1f} ms; ratio to the floor {check1 / floor:.2f} (target <= 2)")
    with tempfile.TemporaryDirectory(dir=shm) as work:
        keyring, src = make_tree(work, 100, 100)
        render = median_time(lambda i: [BIN, "render", "--source", src, "--target", os.path.join(work, f"out{i}"),
                                        "--keyring", keyring])
        cp = median_time(lambda i: ["cp", "-r", src, os.path.join(work, f"cp{i}")])
        small = os.path.join(work, "small")
        os.makedirs(small)
        k2, s2 = make_tree(small, 1, 100)
        ready = start_to_ready(small, k2, s2)
        rss = peak_rss_watching(work, keyring, src)
    size = os.path.getsize(BIN)
    print(f"render 100 files x 100 values: {render * 1000:.1f} ms (target <= 50 ms)")
    print(f"cp -r of the same tree:        {cp * 1000:.1f} ms; ratio render/cp = {render / cp:.2f}")
    print(f"start-to-ready, 100 values:    {ready * 1000:.1f} ms (target <= 20 ms)")
    print(f"peak RSS while watching:       {rss:.1f} MiB (target <= 15 MiB)")
    print(f"static stripped binary:        {size / 1e6:.2f} MB (target <= 6 MB)")


if __name__ == "__main__":
    sys.exit(main())
