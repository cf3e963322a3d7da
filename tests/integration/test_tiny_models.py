"""Local tiny checkpoints: deterministic, head_dim 64, loadable by transformers."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from cluster.config import TinyModelSpec
from deployments.tiny import build_tiny_model, is_built

pytestmark = pytest.mark.integration


def _digest(path: Path) -> str:
    return hashlib.sha256((path / "model.safetensors").read_bytes()).hexdigest()


def test_same_spec_builds_identical_weights(tmp_path: Path) -> None:
    spec = TinyModelSpec(hidden_size=128, num_layers=2, intermediate_size=256, seed=7)
    build_tiny_model(tmp_path / "a", spec)
    build_tiny_model(tmp_path / "b", spec)
    assert _digest(tmp_path / "a") == _digest(tmp_path / "b")
    other = spec.model_copy(update={"seed": 8})
    build_tiny_model(tmp_path / "c", other)
    assert _digest(tmp_path / "c") != _digest(tmp_path / "a")
    assert is_built(tmp_path / "a", spec) and not is_built(tmp_path / "a", other)


def test_checkpoint_is_a_llama_with_head_dim_64_and_a_chat_template(tmp_path: Path) -> None:
    from transformers import AutoConfig, AutoTokenizer

    spec = TinyModelSpec(hidden_size=256, num_layers=4, intermediate_size=512, seed=1)
    build_tiny_model(tmp_path / "m", spec)
    config = AutoConfig.from_pretrained(tmp_path / "m")
    assert config.model_type == "llama"
    assert config.hidden_size // config.num_attention_heads == 64
    assert config.num_hidden_layers == 4
    tok = AutoTokenizer.from_pretrained(tmp_path / "m")
    text = tok.apply_chat_template(
        [{"role": "user", "content": "What is a tort?"}], tokenize=False, add_generation_prompt=True
    )
    assert "What is a tort?" in text and text.endswith("<|assistant|>\n")
    ids = tok("The patient presented with chest pain.")["input_ids"]
    assert tok.decode(ids) == "The patient presented with chest pain."
    stamp = json.loads((tmp_path / "m" / "garden-tiny.json").read_text())
    assert stamp["spec"]["seed"] == 1
