#!/usr/bin/env python3
"""Make the Llama-family variant parity fixtures for assay-mech.

Tiny randomly initialised models built with Hugging Face `transformers` (fixed seed), one per
feature the shared Llama forward pass must reproduce: Mistral's sliding-window attention,
Qwen2's per-layer sliding window, and the rotary scalings `linear`, `dynamic` (NTK) and
`yarn`. Each is saved in Hugging Face layout with reference logits computed by `transformers`
(eager attention) on a sequence longer than the window and the original context.

The Rust test `tests/llama_variants.rs` loads each model with assay-mech and compares.
Re-run only to regenerate:

    python3 -m venv /tmp/ref && /tmp/ref/bin/pip install torch transformers safetensors
    /tmp/ref/bin/python scripts/make-llama-variants-fixture.py

Output: crates/assay-mech/tests/fixtures/llama-variants/<name>/{config.json,model.safetensors,reference.json}
"""
import json
import os

import torch
import transformers
from transformers import LlamaConfig, LlamaForCausalLM, MistralConfig, MistralForCausalLM
from transformers import Qwen2Config, Qwen2ForCausalLM

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "crates", "assay-mech",
                   "tests", "fixtures", "llama-variants")
SEED = 20261121
SHAPE = dict(vocab_size=64, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
             num_attention_heads=4, num_key_value_heads=2, rms_norm_eps=1e-5,
             tie_word_embeddings=False)


def variants():
    yield "mistral-sliding-window", MistralForCausalLM, MistralConfig(
        **SHAPE, sliding_window=4, max_position_embeddings=64, rope_theta=10000.0)
    yield "qwen2-sliding-window", Qwen2ForCausalLM, Qwen2Config(
        **SHAPE, use_sliding_window=True, sliding_window=4, max_window_layers=1,
        max_position_embeddings=64, rope_theta=10000.0)
    yield "llama-rope-linear", LlamaForCausalLM, LlamaConfig(
        **SHAPE, max_position_embeddings=64, rope_theta=10000.0,
        rope_scaling={"rope_type": "linear", "factor": 4.0})
    yield "llama-rope-dynamic", LlamaForCausalLM, LlamaConfig(
        **SHAPE, max_position_embeddings=8, rope_theta=10000.0,
        rope_scaling={"rope_type": "dynamic", "factor": 2.0})
    yield "llama-rope-yarn", LlamaForCausalLM, LlamaConfig(
        **SHAPE, max_position_embeddings=64, rope_theta=10000.0,
        rope_scaling={"rope_type": "yarn", "factor": 4.0, "original_max_position_embeddings": 8})


def main() -> None:
    seq = [5, 17, 42, 9, 0, 63, 8, 21, 30, 7, 7, 50, 3, 3, 11, 60, 1, 2, 44, 19]
    for name, cls, cfg in variants():
        torch.manual_seed(SEED)
        cfg._attn_implementation = "eager"
        model = cls(cfg).eval()
        with torch.no_grad():
            for pname, p in model.named_parameters():
                if "norm" in pname or pname.endswith(".bias"):
                    p.add_(0.1 * torch.randn_like(p))
                # Sharpen attention so positions (rotary, window) visibly matter.
                if "q_proj.weight" in pname or "k_proj.weight" in pname:
                    p.mul_(12.0)
        out_dir = os.path.join(OUT, name)
        os.makedirs(out_dir, exist_ok=True)
        model.save_pretrained(out_dir, safe_serialization=True)
        with torch.no_grad():
            logits = model(torch.tensor([seq])).logits
        with open(os.path.join(out_dir, "reference.json"), "w") as f:
            json.dump({
                "generator": "scripts/make-llama-variants-fixture.py",
                "torch": torch.__version__,
                "transformers": transformers.__version__,
                "seed": SEED,
                "input_ids": seq,
                "logits": [[round(v, 6) for v in row] for row in logits[0].tolist()],
            }, f)
        print(name, "ok")


if __name__ == "__main__":
    main()
