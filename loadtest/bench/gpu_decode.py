"""A Llama-shaped model's prefill and decode speed on one GPU, in plain PyTorch.

Used once to check the published figures behind ``autoscaling/profiles/default.yaml``
on a GPU this project could borrow (no vLLM there; nothing can be downloaded,
so the weights are random: speed depends only on the shapes). Each decode
step (all layers, one token per sequence, attention over a static KV cache of
``context`` tokens) is captured in a CUDA graph, as vLLM does, so Python
overhead is not measured. Prints one JSON object.

    python -m loadtest.bench.gpu_decode [--layers 32] [--hidden 4096] ...
"""

from __future__ import annotations

import argparse
import functools
import json
import time
from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F


class _Layer:
    def __init__(self, a: argparse.Namespace, batch: int, dev: str, dt: torch.dtype) -> None:
        h, kv = a.hidden, a.kv_heads * a.head_dim

        def w(*shape: int) -> torch.Tensor:
            return torch.randn(*shape, device=dev, dtype=dt) * 0.02

        self.qkv = w(h + 2 * kv, h)
        self.o = w(h, h)
        self.gate_up = w(2 * a.ffn, h)
        self.down = w(h, a.ffn)
        self.n1 = torch.ones(h, device=dev, dtype=dt)
        self.n2 = torch.ones(h, device=dev, dtype=dt)
        self.k = torch.zeros(batch, a.kv_heads, a.context, a.head_dim, device=dev, dtype=dt)
        self.v = torch.zeros_like(self.k)
        self.a = a

    def __call__(self, x: torch.Tensor, causal: bool) -> torch.Tensor:
        a = self.a
        b, t, h = x.shape
        y = F.rms_norm(x, (h,), self.n1)
        kv = a.kv_heads * a.head_dim
        q, k, v = (y @ self.qkv.T).split([h, kv, kv], -1)
        q = q.view(b, t, a.heads, a.head_dim).transpose(1, 2)
        k = k.view(b, t, a.kv_heads, a.head_dim).transpose(1, 2)
        v = v.view(b, t, a.kv_heads, a.head_dim).transpose(1, 2)
        if causal:  # prefill: attend within the prompt
            keys, values = k, v
        else:  # decode: write this token's K/V into the cache, attend to all of it
            self.k[:, :, -1:] = k
            self.v[:, :, -1:] = v
            keys, values = self.k, self.v
        att = F.scaled_dot_product_attention(q, keys, values, is_causal=causal, enable_gqa=True)
        x = x + att.transpose(1, 2).reshape(b, t, h) @ self.o.T
        y = F.rms_norm(x, (h,), self.n2)
        g, u = (y @ self.gate_up.T).chunk(2, -1)
        return x + (F.silu(g) * u) @ self.down.T


def _model(a: argparse.Namespace, batch: int, dev: str, dt: torch.dtype) -> Any:
    layers = [_Layer(a, batch, dev, dt) for _ in range(a.layers)]
    head = torch.randn(a.vocab, a.hidden, device=dev, dtype=dt) * 0.02

    def forward(x: torch.Tensor, causal: bool) -> torch.Tensor:
        for layer in layers:
            x = layer(x, causal)
        return x[:, -1] @ head.T  # logits of the last position only, as vLLM computes

    return forward


def _time(fn: Callable[[], Any], sync: Callable[[], None], reps: int) -> float:
    for _ in range(3):
        fn()
    sync()
    started = time.perf_counter()
    for _ in range(reps):
        fn()
    sync()
    return (time.perf_counter() - started) / reps


def _prefill_rate(a: argparse.Namespace, dev: str, dt: torch.dtype) -> float:
    forward = _model(a, 1, dev, dt)
    prompt = torch.randn(1, a.prompt, a.hidden, device=dev, dtype=dt)
    seconds = _time(functools.partial(forward, prompt, True), _sync(dev), max(3, a.reps // 4))
    return float(a.prompt) / seconds


def _decode_step_s(a: argparse.Namespace, batch: int, dev: str, dt: torch.dtype) -> float:
    forward = _model(a, batch, dev, dt)
    token = torch.randn(batch, 1, a.hidden, device=dev, dtype=dt)
    step: Callable[[], Any] = functools.partial(forward, token, False)
    if dev == "cuda":  # replay the whole step as one CUDA graph, as vLLM does
        step()
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            forward(token, False)
        step = graph.replay
    return _time(step, _sync(dev), a.reps)


def _sync(dev: str) -> Callable[[], None]:
    return torch.cuda.synchronize if dev == "cuda" else (lambda: None)


def _args() -> argparse.Namespace:
    p = argparse.ArgumentParser()
    for name, default in [("layers", 32), ("hidden", 4096), ("heads", 32), ("kv_heads", 8),
                          ("head_dim", 128), ("ffn", 14336), ("vocab", 128256),
                          ("context", 2048), ("prompt", 2048), ("reps", 20)]:  # fmt: skip
        p.add_argument(f"--{name.replace('_', '-')}", type=int, default=default)
    p.add_argument("--batches", default="1,8,32,64")
    return p.parse_args()


def main() -> None:
    a = _args()
    dev = "cuda" if torch.cuda.is_available() else "cpu"
    dt = torch.bfloat16 if dev == "cuda" else torch.float32
    out: dict[str, Any] = {
        "device": torch.cuda.get_device_name() if dev == "cuda" else "cpu",
        "shape": vars(a),
        "decode": {},
    }
    with torch.inference_mode():
        out["prefill_tokens_per_s"] = round(_prefill_rate(a, dev, dt), 1)
        for batch in [int(b) for b in a.batches.split(",")]:
            step_s = _decode_step_s(a, batch, dev, dt)
            out["decode"][batch] = {
                "step_ms": round(step_s * 1000, 3),
                "tokens_per_s_per_seq": round(1 / step_s, 1),
            }
            if dev == "cuda":
                torch.cuda.empty_cache()
    print(json.dumps(out))


if __name__ == "__main__":
    main()
