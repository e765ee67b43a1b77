#!/usr/bin/env bash
# Install AgentDojo into a private virtualenv for `assay import agentdojo` and the parity test.
#
#   scripts/setup-agentdojo.sh            # venv at $ASSAY_AGENTDOJO_VENV or ~/.cache/assay/agentdojo-venv
#   PY=$(scripts/setup-agentdojo.sh | tail -n 1)   # the venv's python, on the last line
#
# The version is pinned: the importer and the parity scorer rely on AgentDojo's internals
# (TaskSuite, FunctionsRuntime, load_and_inject_default_environment, the canary injection
# candidates, the shape of each suite's environment), and its task definitions and ground
# truths change between releases. 0.1.35 is the newest release on PyPI when this was written
# (it ships benchmark versions v1 .. v1.2.2); bump it deliberately, re-run the Python tests and
# re-check the dump's figures.
#
# Idempotent: when the venv already has this agentdojo version, nothing is installed.
# Needs no stdin (pip runs with --no-input); works under CI=true.
set -euo pipefail

AGENTDOJO_VERSION="0.1.35"
VENV="${ASSAY_AGENTDOJO_VENV:-$HOME/.cache/assay/agentdojo-venv}"
BASE_PY="${PYTHON:-python3}"

if ! command -v "$BASE_PY" >/dev/null 2>&1; then
  echo "setup-agentdojo: need python3 (3.10 or newer); set PYTHON=..." >&2
  exit 1
fi
if ! "$BASE_PY" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 10) else 1)'; then
  echo "setup-agentdojo: $BASE_PY is $("$BASE_PY" -V 2>&1); agentdojo needs Python 3.10 or newer" >&2
  exit 1
fi

VPY="$VENV/bin/python"
installed_version() {
  "$VPY" - <<'PY' 2>/dev/null || true
from importlib import metadata
try:
    print(metadata.version("agentdojo"))
except metadata.PackageNotFoundError:
    pass
PY
}

if [[ -x "$VPY" ]] && [[ "$(installed_version)" == "$AGENTDOJO_VERSION" ]] \
   && "$VPY" -c 'import agentdojo.task_suite' >/dev/null 2>&1; then
  echo "setup-agentdojo: agentdojo $AGENTDOJO_VERSION already installed in $VENV" >&2
else
  if [[ ! -x "$VPY" ]]; then
    echo "setup-agentdojo: creating virtualenv $VENV" >&2
    mkdir -p "$(dirname "$VENV")"
    "$BASE_PY" -m venv "$VENV"
  fi
  echo "setup-agentdojo: installing agentdojo==$AGENTDOJO_VERSION into $VENV" >&2
  export PIP_NO_INPUT=1 PIP_DISABLE_PIP_VERSION_CHECK=1
  "$VPY" -m pip install --quiet --no-input "agentdojo==$AGENTDOJO_VERSION" </dev/null >&2
  if [[ "$(installed_version)" != "$AGENTDOJO_VERSION" ]]; then
    echo "setup-agentdojo: install finished but agentdojo $AGENTDOJO_VERSION is not importable from $VPY" >&2
    exit 1
  fi
fi

echo "$VPY"
