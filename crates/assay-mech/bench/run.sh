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
ROUNDS="${BENCH_ROUNDS:-5}"
OUT="$(mktemp -d)"
trap 'rm -rf "$OUT"' EXIT
# Rounds alternate sides, so slow phases of a shared machine hit both; the summary pairs each
# round's figures and reports the ratio per round, its median and its worst.
for round in $(seq "$ROUNDS"); do
  echo "== round $round"
  "$BIN" "$GGUF" --probe-data "$OUT/probe.f32" | tee "$OUT/assay.$round"
  "$VENV/bin/python" "$HERE/torch_sklearn.py" all "$OUT/probe.f32" | tee "$OUT/reference.$round"
done
"$VENV/bin/python" - "$OUT" "$ROUNDS" <<'PY'
import statistics, sys
out, rounds = sys.argv[1], int(sys.argv[2])
def results(path):
    r = {}
    for line in open(path):
        if line.startswith("RESULT "):
            _, _, key, value = line.split()
            r[key] = float(value)
    return r
rows = [(results(f"{out}/assay.{i}"), results(f"{out}/reference.{i}")) for i in range(1, rounds + 1)]
def report(label, ours, theirs, higher_is_faster):
    ratio = (lambda a, r: a / r) if higher_is_faster else (lambda a, r: r / a)
    per_round = sorted(ratio(a, r) for a, r in zip(ours, theirs))
    pick = max if higher_is_faster else min
    overall = ratio(pick(ours), pick(theirs))
    print(f"{label:50} per round {' '.join(f'{x:.2f}' for x in per_round)}  median {statistics.median(per_round):.2f}  worst {per_round[0]:.2f}  best-vs-best {overall:.2f}")
print("== summary (ratio > 1: assay-mech faster; best-vs-best compares each side's best round)")
for key, label in [("forward_full", "forward 8x128, full logits"), ("forward_body", "forward 8x128, no output layer")]:
    report(label, [a[key] for a, _ in rows], [r[key] for _, r in rows], True)
for dtype in ("float32", "float64"):
    report(f"logreg fit vs scikit-learn {dtype}", [a["probe_fit_s"] for a, _ in rows], [r[f"probe_fit_s_{dtype}"] for _, r in rows], False)
PY
