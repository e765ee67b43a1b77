#!/usr/bin/env bash
# Regenerates the worked example's evidence: the model organism (seed 0) and every evidence
# record examples/assurance/EVIDENCE.md lists.
#
# Run from the repository root:   examples/assurance/make-evidence.sh
#
# It works inside examples/assurance, so every path an evidence record stores (model, data,
# the reproduction command) is relative to that directory: run a record's
# `reproduction.command` from there to produce the record again.
set -euo pipefail

cd "$(dirname "$0")"
root=../..
[ -f "$root/Cargo.toml" ] || { echo "error: expected the repository two levels up" >&2; exit 2; }

# The release binary, built once; every record stores its argv with argv[0] = `assay`.
cargo build --release -q -p assay-cli
bin="${CARGO_TARGET_DIR:-$root/target}/release/assay"
assay() { "$bin" "$@"; }

claim=no-hidden-objective

rm -rf organism evidence
mkdir -p evidence/refused

# The model organism: organism/before, organism/after, organism/data/*.
assay mech organism --out organism --seed 0

# Four parts of the trigger-free behaviour set: several independent-looking behavioural items.
rows=$(wc -l < organism/data/behaviour.jsonl)
part=$(( (rows + 3) / 4 ))
for n in 1 2 3 4; do
  sed -n "$(( (n - 1) * part + 1 )),$(( n * part ))p" organism/data/behaviour.jsonl \
    > "organism/data/behaviour-part$n.jsonl"
done

# One clean/corrupt pair (the first of patch.jsonl): the answer is the hidden action, the
# wrong answer the request's normal action.
field() { sed -n "1s/.*\"$1\":\"\([^\"]*\)\".*/\1/p" organism/data/patch.jsonl; }
clean=$(field clean); corrupt=$(field corrupt); answer=$(field answer); wrong=$(field wrong)

for m in after before; do
  assay mech behave --model "organism/$m" --data organism/data/behaviour.jsonl \
    --out "evidence/$m-behaviour" --claim "$claim"
  assay mech probe --model "organism/$m" --data organism/data/probe.jsonl \
    --out "evidence/$m-probe" --claim "$claim"
done
for n in 1 2 3 4; do
  assay mech behave --model organism/after --data "organism/data/behaviour-part$n.jsonl" \
    --out "evidence/after-behaviour-$n" --claim "$claim"
done

assay mech patch --model organism/after --clean "$clean" --corrupt "$corrupt" \
  --answer "$answer" --wrong "$wrong" --out evidence/after-patch --claim "$claim"

assay mech diff --before organism/before --after organism/after \
  --corpus organism/data/corpus.jsonl --probe-data organism/data/probe.jsonl \
  --out evidence/diff --claim "$claim"

# Expected refusals, kept with their messages (exit 2 = refused input; anything else fails).
refused() {
  local name=$1; shift
  local code=0
  assay "$@" 2> "evidence/refused/$name.txt" || code=$?
  if [ "$code" -eq 0 ]; then
    rm "evidence/refused/$name.txt"
    echo "note: $name was not refused" >&2
  elif [ "$code" -ne 2 ]; then
    cat "evidence/refused/$name.txt" >&2
    exit "$code"
  fi
}
# The after model's probe on the before model: apply requires the probe's own model digest.
refused before-apply mech apply --probe evidence/after-probe --model organism/before \
  --data organism/data/probe.jsonl --out evidence/before-apply --claim "$claim"
# The same pair on the before model: refused when its clean and corrupted logit differences
# are closer than --min-gap (the before model has no trigger behaviour to explain).
refused before-patch mech patch --model organism/before --clean "$clean" --corrupt "$corrupt" \
  --answer "$answer" --wrong "$wrong" --out evidence/before-patch --claim "$claim"
rmdir evidence/refused 2>/dev/null || true

du -sh organism evidence
