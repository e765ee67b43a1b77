#!/usr/bin/env bash
# Benchmark assay-mech against PyTorch and scikit-learn on this machine, interleaved so that
# both sides see the same load. Not part of CI (it installs ~6 GB of PyTorch from PyPI).
#
#   bash crates/assay-mech/bench/run.sh            # uses $ASSAY_MODELS or .cache/models
#
# Needs: the SmolLM2 GGUF (scripts/fetch-models.sh), python3 with venv, network to PyPI.
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "$HERE/../../.." && pwd)"
MODELS="${ASSAY_MODELS:-$REPO/.cache/models}"
VENV="${BENCH_VENV:-$REPO/.cache/bench-venv}"
GGUF="$MODELS/smollm2-135m-instruct/SmolLM2-135M-Instruct.Q4_1.gguf"
[[ -f "$GGUF" ]] || bash "$REPO/scripts/fetch-models.sh"
if [[ ! -x "$VENV/bin/python" ]]; then
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install --quiet torch transformers scikit-learn numpy
fi
(cd "$REPO" && cargo build --release -p assay-mech --example bench)
BIN="${CARGO_TARGET_DIR:-$REPO/target}/release/examples/bench"
for round in 1 2; do
  echo "== round $round"
  "$BIN" "$GGUF"
  "$VENV/bin/python" "$HERE/torch_sklearn.py" all
done
