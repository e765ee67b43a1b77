#!/usr/bin/env bash
# Assay on imported AgentDojo suites against AgentDojo's own ground-truth pipeline, side by side.
#
#   bench/agentdojo-side-by-side.sh                  # all four suites
#   bench/agentdojo-side-by-side.sh banking slack    # some suites
#   REPEAT=3 bench/agentdojo-side-by-side.sh         # fastest of three runs per side
#
# Installs agentdojo from PyPI into its virtualenv (scripts/setup-agentdojo.sh), builds the assay
# binary in release mode, then runs bench/agentdojo_side_by_side.py: JSON on stdout, a table on stderr.
set -euo pipefail
cd "$(dirname "$0")/.."

PY="$(bash scripts/setup-agentdojo.sh | tail -n 1)"
cargo build --release --quiet -p assay-cli
ASSAY="${CARGO_TARGET_DIR:-target}/release/assay"

args=()
for s in "$@"; do args+=(--suite "$s"); done
exec "$PY" -I bench/agentdojo_side_by_side.py --assay "$ASSAY" --repeat "${REPEAT:-1}" "${args[@]}"
