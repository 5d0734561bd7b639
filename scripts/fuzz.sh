#!/usr/bin/env bash
# Run every fuzz target for a bounded time (FUZZ_SECONDS each, default 20),
# seeded from the committed seeds in fuzz/seeds/<target>/, on the machine's
# one stable toolchain (RUSTC_BOOTSTRAP, as cargo-fuzz does on stable; no
# cargo-fuzz needed). New inputs go to a scratch directory, never into the
# repository. A crash or a failed assertion fails the script and prints the
# input (base64), which becomes a regression test before it is fixed.
set -euo pipefail
cd "$(dirname "$0")/../fuzz"
seconds="${FUZZ_SECONDS:-20}"
targets="${FUZZ_TARGETS:-token keyring config names sealed yaml11}"
triple="$(rustc -vV | sed -n 's/^host: //p')"
target_dir="${FUZZ_TARGET_DIR:-${CARGO_TARGET_DIR:-$PWD/../target}/fuzz}"
export RUSTC_BOOTSTRAP=1 CARGO_TARGET_DIR="$target_dir"
# What cargo-fuzz passes: coverage for libFuzzer, debug assertions and
# overflow checks on, the fuzzing cfg.
export RUSTFLAGS="-Cpasses=sancov-module -Cllvm-args=-sanitizer-coverage-level=4 \
-Cllvm-args=-sanitizer-coverage-inline-8bit-counters -Cllvm-args=-sanitizer-coverage-pc-table \
-Cllvm-args=-sanitizer-coverage-trace-compares --cfg fuzzing -Cdebug-assertions -Coverflow-checks"
cargo build --quiet --release --locked --bins --target "$triple"
scratch="$(mktemp -d)"
trap 'rm -rf "$scratch"' EXIT
for t in $targets; do
  mkdir -p "$scratch/$t/corpus"
  if ! "$target_dir/$triple/release/$t" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 \
      -artifact_prefix="$scratch/$t/" "$scratch/$t/corpus" "seeds/$t" >"$scratch/$t/log" 2>&1; then
    tail -n 30 "$scratch/$t/log" >&2
    for a in "$scratch/$t"/crash-* "$scratch/$t"/timeout-* "$scratch/$t"/oom-*; do
      [ -e "$a" ] && echo "fuzz target $t failed on (base64): $(base64 -w0 "$a")" >&2
    done
    exit 1
  fi
  echo "fuzz $t: $(grep -Eo 'Done [0-9]+ runs' "$scratch/$t/log" | tail -n1) in ${seconds}s"
done
