#!/usr/bin/env bash
# Builds the fuzz targets with libFuzzer's coverage instrumentation on stable Rust
# (the flags cargo-fuzz passes, without AddressSanitizer, which needs nightly; Rust
# code is memory-safe, so panics and failed assertions are what the targets find).
# Usage: fuzz/build.sh, then fuzz/run.sh TARGET SECONDS.
set -euo pipefail
cd "$(dirname "$0")"
export RUSTFLAGS="-Cpasses=sancov-module -Cllvm-args=-sanitizer-coverage-level=4 \
 -Cllvm-args=-sanitizer-coverage-inline-8bit-counters -Cllvm-args=-sanitizer-coverage-pc-table \
 -Cllvm-args=-sanitizer-coverage-trace-compares --cfg fuzzing -Cdebug-assertions -Coverflow-checks"
# --target keeps the flags off build scripts and proc-macros, as cargo-fuzz does.
cargo build --release --target x86_64-unknown-linux-gnu --target-dir "${FUZZ_TARGET_DIR:-target}" --bins
