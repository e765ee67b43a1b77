#!/usr/bin/env python3
"""Make the GPT-2 parity fixture for assay-mech.

Builds a tiny randomly initialised GPT-2 with Hugging Face `transformers` (fixed seed),
saves it in Hugging Face layout (config.json + model.safetensors), and records reference
outputs computed by `transformers` itself: last-layer logits and every hidden state, for a
few token sequences, including a right-padded batch with an attention mask.

The Rust test `tests/gpt2_fixture.rs` loads the saved model with assay-mech's own GPT-2
forward pass and compares. Re-run only to regenerate the fixture:

    python3 -m venv /tmp/ref && /tmp/ref/bin/pip install torch transformers safetensors
    /tmp/ref/bin/python scripts/make-gpt2-fixture.py

Output: crates/assay-mech/tests/fixtures/tiny-gpt2/{config.json,model.safetensors,reference.json}
"""
import json
import os
import sys

import torch
import transformers
from transformers import GPT2Config, GPT2LMHeadModel

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "crates", "assay-mech",
                   "tests", "fixtures", "tiny-gpt2")


def main() -> int:
    torch.manual_seed(20261121)
    cfg = GPT2Config(
        vocab_size=101, n_positions=32, n_embd=64, n_layer=3, n_head=4,
        activation_function="gelu_new", layer_norm_epsilon=1e-5,
        resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0,
    )
    model = GPT2LMHeadModel(cfg).eval()
    # Default init leaves biases and LayerNorm parameters at 0/1; perturb them so the
    # fixture exercises every parameter.
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith(".bias") or ".ln_" in name or name.startswith("transformer.ln_f"):
                p.add_(0.1 * torch.randn_like(p))
    os.makedirs(OUT, exist_ok=True)
    model.save_pretrained(OUT, safe_serialization=True)

    sequences = [
        [5, 17, 42, 99, 0, 63, 8, 21, 30, 7, 7, 100],
        [1, 2, 3, 4, 5, 6, 7],
    ]
    cases = []
    # Each sequence alone, and both right-padded in one batch with an attention mask.
    with torch.no_grad():
        for seq in sequences:
            ids = torch.tensor([seq])
            out = model(ids, output_hidden_states=True)
            cases.append({
                "input_ids": [seq],
                "attention_mask": [[1] * len(seq)],
                "logits": out.logits.tolist(),
                # hidden_states[l] for l < n_layer is the input to block l (resid_pre);
                # the last entry is the output after the final LayerNorm.
                "hidden_states": [h.tolist() for h in out.hidden_states],
            })
        t = max(len(s) for s in sequences)
        ids = torch.tensor([s + [0] * (t - len(s)) for s in sequences])
        mask = torch.tensor([[1] * len(s) + [0] * (t - len(s)) for s in sequences])
        out = model(ids, attention_mask=mask, output_hidden_states=True)
        cases.append({
            "input_ids": ids.tolist(),
            "attention_mask": mask.tolist(),
            "logits": out.logits.tolist(),
            "hidden_states": [h.tolist() for h in out.hidden_states],
        })
    ref = {
        "generator": "scripts/make-gpt2-fixture.py",
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "seed": 20261121,
        "note": "hidden_states[l] = input of block l for l < n_layer; hidden_states[n_layer] = after ln_f",
        "cases": cases,
    }
    with open(os.path.join(OUT, "reference.json"), "w") as f:
        json.dump(ref, f)
    print(f"wrote {OUT}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
