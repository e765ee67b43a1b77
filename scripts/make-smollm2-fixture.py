#!/usr/bin/env python3
"""Record reference logits from Hugging Face `transformers` for SmolLM2-135M-Instruct loaded
from the same GGUF that assay-mech reads (transformers dequantises it to float32), for
assay-mech's cross-implementation check `tests/smollm2_transformers.rs`.

    pip install torch transformers gguf accelerate
    python3 scripts/make-smollm2-fixture.py [path/to/SmolLM2-135M-Instruct.Q4_1.gguf]

Output: crates/assay-mech/tests/fixtures/smollm2-logits.json (token ids of each prompt and
the 200 largest last-position logits with their ids).
"""
import json
import os
import sys

import torch
import transformers
from transformers import AutoModelForCausalLM, AutoTokenizer

REPO = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
DEFAULT = os.path.join(os.environ.get("ASSAY_MODELS", os.path.join(REPO, ".cache", "models")),
                       "smollm2-135m-instruct", "SmolLM2-135M-Instruct.Q4_1.gguf")
PROMPTS = [
    [{"role": "user", "content": "What is the capital of France?"}],
    [{"role": "user", "content": "Translate to French: the cat sleeps on the sofa."}],
]


def main() -> int:
    gguf = sys.argv[1] if len(sys.argv) > 1 else DEFAULT
    d, f = os.path.dirname(gguf), os.path.basename(gguf)
    tok = AutoTokenizer.from_pretrained(d, gguf_file=f)
    model = AutoModelForCausalLM.from_pretrained(d, gguf_file=f, torch_dtype=torch.float32,
                                                 attn_implementation="eager").eval()
    cases = []
    with torch.no_grad():
        for messages in PROMPTS:
            text = tok.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
            ids = tok.encode(text, add_special_tokens=False)
            logits = model(torch.tensor([ids])).logits[0, -1]
            top = torch.topk(logits, 200)
            cases.append({"text": text, "ids": ids, "top_ids": top.indices.tolist(),
                          "top_logits": top.values.tolist()})
    out = os.path.join(REPO, "crates", "assay-mech", "tests", "fixtures", "smollm2-logits.json")
    with open(out, "w") as fh:
        json.dump({"generator": "scripts/make-smollm2-fixture.py", "torch": torch.__version__,
                   "transformers": transformers.__version__, "gguf": f, "cases": cases}, fh)
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
