#!/usr/bin/env bash
# Runs one fuzz target for SECONDS (default 60) on its corpus, seeded from fuzz/seeds
# (and, for specs, the examples themselves). Crashes land in fuzz/artifacts/TARGET/.
set -euo pipefail
cd "$(dirname "$0")"
target="$1"; secs="${2:-60}"
bin="${FUZZ_TARGET_DIR:-target}/x86_64-unknown-linux-gnu/release/$target"
mkdir -p "corpus/$target" "artifacts/$target"
seed="seeds/$target"
dirs=("corpus/$target")
[ -d "$seed" ] && dirs+=("$seed")
# The example specs are the spec target's seeds, read in place.
if [ "$target" = spec ]; then dirs+=(../examples/*/); fi
exec "$bin" -max_total_time="$secs" -max_len=65536 -rss_limit_mb=2048 -timeout=10 \
  -artifact_prefix="artifacts/$target/" "${dirs[@]}"
