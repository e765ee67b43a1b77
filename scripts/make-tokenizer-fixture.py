#!/usr/bin/env python3
"""Record the token ids Hugging Face `transformers` assigns to a few texts with the tokenizer
embedded in SmolLM2-135M-Instruct's GGUF, for assay-mech's tokenizer parity test.

    pip install torch transformers gguf
    python3 scripts/make-tokenizer-fixture.py [path/to/SmolLM2-135M-Instruct.Q4_1.gguf]

Output: crates/assay-mech/tests/fixtures/smollm2-tokens.json
"""
import json
import os
import sys

import transformers
from transformers import AutoTokenizer

REPO = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
DEFAULT = os.path.join(os.environ.get("ASSAY_MODELS", os.path.join(REPO, ".cache", "models")),
                       "smollm2-135m-instruct", "SmolLM2-135M-Instruct.Q4_1.gguf")
TEXTS = [
    "The year 2024 had 366 days.",
    "Il fait froid ce matin.",
    "Les enfants jouent dans le jardin, n'est-ce pas ?",
    "x=3.14159; print(x*2)",
    "  leading spaces and\ttabs\nnewline",
    "<|im_start|>user\nHi<|im_end|>",
    "Ünïcödé — naïve café 東京 🙂",
    "Refund order #1042 within 5 days.",
]


def main() -> int:
    gguf = sys.argv[1] if len(sys.argv) > 1 else DEFAULT
    tok = AutoTokenizer.from_pretrained(os.path.dirname(gguf), gguf_file=os.path.basename(gguf))
    cases = [{"text": t, "ids": tok.encode(t, add_special_tokens=False)} for t in TEXTS]
    out = os.path.join(REPO, "crates", "assay-mech", "tests", "fixtures", "smollm2-tokens.json")
    with open(out, "w") as f:
        json.dump({"generator": "scripts/make-tokenizer-fixture.py",
                   "transformers": transformers.__version__,
                   "gguf": os.path.basename(gguf), "cases": cases}, f, ensure_ascii=False, indent=1)
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
