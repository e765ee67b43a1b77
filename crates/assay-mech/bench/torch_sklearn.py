#!/usr/bin/env python3
"""The Python side of the assay-mech benchmark: the same work in PyTorch and scikit-learn.

forward: a Llama with SmolLM2-135M's exact shape (random weights: throughput does not depend
         on the values), float32, eager attention, no KV cache, batch 8 x 128 tokens, with
         and without the output layer.
probe:   StandardScaler + LogisticRegression(C=1, lbfgs, max_iter=100) on the 10,000 x 576
         matrix examples/bench.rs wrote (`probe FILE`), so both sides fit identical data: in
         float32 (the dtype of the activations, and what assay-mech stores) and in float64
         (scikit-learn's default). Without FILE, data from the same recipe (different RNG).

Lines starting RESULT are for run.sh's summary.
"""
import os
import sys
import time

import numpy as np
import torch
from sklearn.linear_model import LogisticRegression
from sklearn.preprocessing import StandardScaler
from transformers import LlamaConfig, LlamaForCausalLM


FORWARD_REPS = 5


def bench_forward(threads: int) -> None:
    torch.set_num_threads(threads)
    cfg = LlamaConfig(
        vocab_size=49152, hidden_size=576, intermediate_size=1536, num_hidden_layers=30,
        num_attention_heads=9, num_key_value_heads=3, rms_norm_eps=1e-5, rope_theta=100000.0,
        tie_word_embeddings=True, max_position_embeddings=8192,
    )
    cfg._attn_implementation = "eager"
    torch.manual_seed(0)
    model = LlamaForCausalLM(cfg).eval()
    ids = torch.randint(0, 49152, (8, 128))
    with torch.no_grad():
        for name, fn in [
            ("full logits", lambda: model(ids, use_cache=False).logits),
            ("no output layer", lambda: model.model(ids, use_cache=False).last_hidden_state),
        ]:
            fn()
            s = float("inf")
            for _ in range(FORWARD_REPS):
                t0 = time.perf_counter()
                fn()
                s = min(s, time.perf_counter() - t0)
            print(f"torch forward 8x128 ({name}, {threads} threads): {s:.3f} s/batch best of {FORWARD_REPS}, {8 * 128 / s:.0f} tokens/s")
            key = "forward_full" if name == "full logits" else "forward_body"
            print(f"RESULT reference {key} {8 * 128 / s:.1f}")


PROBE_REPS = 20


def bench_probe(path: str | None) -> None:
    n, d = 10_000, 576
    y = (np.arange(n) % 2).astype(float)
    if path:
        x = np.fromfile(path, dtype="<f4").reshape(n, d)
    else:
        rng = np.random.default_rng(1)
        direction = rng.standard_normal(d)
        scale = 1.0 + (np.arange(d) % 7)
        x = rng.standard_normal((n, d)) * scale + 0.05 * (2 * y - 1)[:, None] * direction[None, :]
        x = x.astype(np.float32)
    for dtype in (np.float32, np.float64):
        xd = x.astype(dtype)
        best = float("inf")
        for _ in range(PROBE_REPS):
            t0 = time.perf_counter()
            z = StandardScaler().fit_transform(xd)
            clf = LogisticRegression(C=1.0, max_iter=100).fit(z, y)
            best = min(best, time.perf_counter() - t0)
        name = np.dtype(dtype).name
        print(f"sklearn logreg fit {n}x{d} {name} (StandardScaler + lbfgs, C=1, max_iter 100, tol 1e-4): {best:.4f} s best of {PROBE_REPS}, {clf.n_iter_[0]} iterations (train acc {clf.score(z, y):.4f})")
        print(f"RESULT reference probe_fit_s_{name} {best:.5f}")


if __name__ == "__main__":
    what = sys.argv[1] if len(sys.argv) > 1 else "all"
    data = sys.argv[2] if len(sys.argv) > 2 else None
    threads = int(os.environ.get("BENCH_THREADS", "2"))
    if what in ("all", "forward"):
        bench_forward(threads)
    if what in ("all", "probe"):
        bench_probe(data)
