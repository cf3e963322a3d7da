"""A minimal BERT encoder in plain torch: what MiniLM's forward pass needs, nothing more.

The classifier runs one unpadded sequence at a time, so there is no
attention mask, no dropout, no token types beyond 0, no pooler and no
cache. Importing ``transformers`` for this took about 7 s of a router's
start-up and its module stack a few ms per query; these ~60 lines load the
same safetensors weights and compute the same hidden states (an
integration test compares them with ``transformers.BertModel``).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.nn import functional

__all__ = ["BertEncoder"]


class _Layer(nn.Module):
    def __init__(self, hidden: int, heads: int, inner: int, eps: float) -> None:
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(hidden, 3 * hidden)  # query, key, value in one product
        self.attn_out = nn.Linear(hidden, hidden)
        self.attn_norm = nn.LayerNorm(hidden, eps=eps)
        self.up = nn.Linear(hidden, inner)
        self.down = nn.Linear(inner, hidden)
        self.out_norm = nn.LayerNorm(hidden, eps=eps)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        length, hidden = x.shape
        q, k, v = self.qkv(x).view(length, 3, self.heads, hidden // self.heads).permute(1, 2, 0, 3)
        attended = functional.scaled_dot_product_attention(q, k, v)
        x = self.attn_norm(x + self.attn_out(attended.transpose(0, 1).reshape(length, hidden)))
        out: torch.Tensor = self.out_norm(x + self.down(functional.gelu(self.up(x))))
        return out


class BertEncoder(nn.Module):
    """The first ``layers`` layers of the BERT checkpoint in ``path``.

    ``forward(ids)`` takes one sequence of token ids (special tokens
    included) and returns its ``(length, hidden)`` last hidden states.
    """

    def __init__(self, path: Path, layers: int) -> None:
        super().__init__()
        config: dict[str, Any] = json.loads((path / "config.json").read_text(encoding="utf-8"))
        if config.get("hidden_act") != "gelu" or config.get("model_type") != "bert":
            raise ValueError(f"{path} is not a gelu BERT checkpoint")
        hidden, eps = int(config["hidden_size"]), float(config["layer_norm_eps"])
        self.words = nn.Embedding(int(config["vocab_size"]), hidden)
        self.positions = nn.Embedding(int(config["max_position_embeddings"]), hidden)
        self.types = nn.Embedding(int(config["type_vocab_size"]), hidden)
        self.norm = nn.LayerNorm(hidden, eps=eps)
        self.layers = nn.ModuleList(
            _Layer(
                hidden, int(config["num_attention_heads"]), int(config["intermediate_size"]), eps
            )
            for _ in range(layers)
        )
        self.max_length = int(config["max_position_embeddings"])
        self._load(path / "model.safetensors", layers)

    def _load(self, file: Path, layers: int) -> None:
        from safetensors.torch import load_file

        w = load_file(str(file))
        state = {
            "words.weight": w["embeddings.word_embeddings.weight"],
            "positions.weight": w["embeddings.position_embeddings.weight"],
            "types.weight": w["embeddings.token_type_embeddings.weight"],
            "norm.weight": w["embeddings.LayerNorm.weight"],
            "norm.bias": w["embeddings.LayerNorm.bias"],
        }
        for i in range(layers):
            p = f"encoder.layer.{i}."
            for part in ("weight", "bias"):
                state[f"layers.{i}.qkv.{part}"] = torch.cat(
                    [w[f"{p}attention.self.{n}.{part}"] for n in ("query", "key", "value")]
                )
                state[f"layers.{i}.attn_out.{part}"] = w[f"{p}attention.output.dense.{part}"]
                state[f"layers.{i}.attn_norm.{part}"] = w[f"{p}attention.output.LayerNorm.{part}"]
                state[f"layers.{i}.up.{part}"] = w[f"{p}intermediate.dense.{part}"]
                state[f"layers.{i}.down.{part}"] = w[f"{p}output.dense.{part}"]
                state[f"layers.{i}.out_norm.{part}"] = w[f"{p}output.LayerNorm.{part}"]
        self.load_state_dict(state, strict=True)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        length = ids.shape[0]
        x = self.words(ids) + self.positions.weight[:length] + self.types.weight[0]
        out: torch.Tensor = self.norm(x)
        for layer in self.layers:
            out = layer(out)
        return out
