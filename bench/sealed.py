#!/usr/bin/env python3
"""ENCSTR v2 (sealed) benchmarks (not run in CI). Prints figures and ratios for BENCHMARKS.md.

  python3 bench/sealed.py            # builds the static release binary and the floors first

Everything is measured in one run, interleaved, so a noisy neighbour slows all alike:

- open per value, in-process (core/examples/decrypt_floor.rs): 1,000 v2 values
  (sealed with `encstr seal --recipient`) beside 1,000 v1 values (sealed with the keyring);
- the OpenSSL floor of the same 1,000 v2 values (bench/openssl_floor.c, built with `cc
  -lcrypto`): one X25519 derive, one HKDF-SHA256 and one AES-256-GCM decryption per value;
  target: v2 open <= 1.5 x that floor;
- `encstr render` (whole process) of one file of those 1,000 v2 values, against the OpenSSL
  floor plus a `cp` of the file; target <= 2.
"""
import os
import shutil
import statistics
import subprocess
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TARGET = os.environ.get("CARGO_TARGET_DIR", os.path.join(ROOT, "target"))
REL = os.path.join(TARGET, "x86_64-unknown-linux-gnu/release")
BIN = os.path.join(REL, "encstr")
FLOOR = os.path.join(REL, "examples/decrypt_floor")
VALUES = 1000
ROUNDS = 21


def sh(*args, **kw):
    return subprocess.run(args, check=True, capture_output=True, **kw)


def build(work):
    env = dict(os.environ, RUSTFLAGS="-C target-feature=+crt-static")
    target = ["--release", "--quiet", "--target", "x86_64-unknown-linux-gnu"]
    sh("cargo", "build", *target, "-p", "encstr", cwd=ROOT, env=env)
    sh("cargo", "build", *target, "-p", "encstr-core", "--example", "decrypt_floor", cwd=ROOT, env=env)
    ossl = os.path.join(work, "openssl_floor")
    sh(os.environ.get("CC", "cc"), "-O2", "-o", ossl, os.path.join(ROOT, "bench/openssl_floor.c"), "-lcrypto")
    return ossl


def timed(cmd):
    t = time.perf_counter()
    subprocess.run(cmd, check=True, capture_output=True)
    return time.perf_counter() - t


def sealed_file(work, keyring, how, name):
    """A properties file of VALUES 32-byte values sealed by `how`, and its name<TAB>token list."""
    src = os.path.join(work, name)
    os.makedirs(src)
    path = os.path.join(src, "app.properties")
    with open(path, "w") as out:
        for v in range(VALUES):
            out.write(f"svc.db{v}.password = secret-value-{v:05}-0123456789abcd\n")
    sh(BIN, "seal", *how, path)
    tokens = os.path.join(work, f"{name}.tokens")
    with open(path) as f, open(tokens, "w") as out:
        for line in f:
            key, token = line.rstrip("\n").split(" = ", 1)
            assert token.startswith("ENCSTR:"), token
            out.write(f"{key}\t{token}\n")
    return src, path, tokens


def main():
    work = tempfile.mkdtemp(prefix="encstr-bench-sealed-")
    try:
        ossl = build(work)
        keyring = os.path.join(work, "keyring")
        sh(BIN, "keys", "init", "--keyring", keyring)
        recipient = sh(BIN, "keys", "recipient", "--keyring", keyring).stdout.decode().strip()
        src2, path2, tokens2 = sealed_file(work, keyring, ["--recipient", recipient], "v2")
        _, _, tokens1 = sealed_file(work, keyring, ["--keyring", keyring], "v1")
        v1, v2, floor, cp, render = [], [], [], [], []
        for i in range(ROUNDS):
            v2.append(float(sh(FLOOR, keyring, tokens2, "1").stdout.split()[0]))
            v1.append(float(sh(FLOOR, keyring, tokens1, "1").stdout.split()[0]))
            floor.append(float(sh(ossl, str(VALUES), "32", "1").stdout.split()[0]))
            cp.append(timed(["cp", path2, os.path.join(work, f"copy{i}")]))
            out = os.path.join(work, f"out{i}")
            render.append(timed([BIN, "render", "--source", src2, "--target", out, "--keyring", keyring]))
            shutil.rmtree(out)
            os.remove(os.path.join(work, f"copy{i}"))
        v1, v2, floor, cp, render = (statistics.median(x) for x in (v1, v2, floor, cp, render))
        per = lambda s: s / VALUES * 1e6  # noqa: E731
        print(f"open per value (in-process, {VALUES} values of 32 bytes):")
        print(f"  v1 (keyring):          {per(v1):8.2f} us")
        print(f"  v2 (sealed):           {per(v2):8.2f} us")
        print(f"  OpenSSL floor:         {per(floor):8.2f} us; ratio v2/floor {v2 / floor:.2f} (target <= 1.5)")
        print(f"render of one file of {VALUES} v2 values (whole process): {render * 1000:.1f} ms")
        print(f"  floor = OpenSSL {floor * 1000:.1f} ms + cp {cp * 1000:.1f} ms; ratio {render / (floor + cp):.2f} (target <= 2)")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
