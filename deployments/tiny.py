"""Deterministic tiny Llama checkpoints for the embedded garden.

Nothing may come from a model hub here, so ``garden models build`` makes every
model of the default garden locally: a byte-level BPE tokenizer trained on the
text in ``deployments/corpus/`` and seeded random Llama weights at head_dim 64
(vLLM's CPU attention rejects 16). The same :class:`TinyModelSpec` always gives
the same files, and a stamp file lets a rebuild be skipped when nothing changed.
"""

from __future__ import annotations

import functools
import hashlib
import json
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from cluster.config import GardenConfig, ModelSpec, TinyModelSpec

__all__ = ["BuildResult", "build_missing", "build_tiny_model", "is_built", "model_path"]

_STAMP = "garden-tiny.json"
_VOCAB_SIZE = 4096
_SPECIAL = ["<unk>", "<s>", "</s>", "<|system|>", "<|user|>", "<|assistant|>", "<|end|>"]
# A plain role-tagged chat template; vLLM renders it with the checkpoint's tokenizer.
# Tools are offered in a system turn, and an assistant's tool calls written as a
# Python list of calls, `[name(arg="value")]`: the format of vLLM's `pythonic`
# tool parser, which needs no special tokens. A tool's result is a `tool` turn.
_CHAT_TEMPLATE = (
    "{{ bos_token }}"
    "{% if tools %}<|system|>\nYou may call these functions. To call them, answer with "
    'a Python list of calls, such as [name(arg="value")].\n'
    "{% for tool in tools %}"
    "{{ (tool['function'] if tool['function'] is defined else tool) | tojson }}\n"
    "{% endfor %}<|end|>\n{% endif %}"
    "{% for message in messages %}"
    "<|{{ message['role'] }}|>\n"
    "{% if message['content'] is string %}{{ message['content'] }}"
    "{% elif message['content'] %}{% for part in message['content'] %}"
    "{% if part['type'] == 'text' %}{{ part['text'] }}{% endif %}{% endfor %}{% endif %}"
    "{% if message['tool_calls'] %}["
    "{% for call in message['tool_calls'] %}{{ call['function']['name'] }}("
    "{% if call['function']['arguments'] is mapping %}"
    "{% for name, value in call['function']['arguments'].items() %}"
    "{{ name }}={{ value | tojson }}{% if not loop.last %}, {% endif %}{% endfor %}"
    "{% endif %}){% if not loop.last %}, {% endif %}{% endfor %}]{% endif %}"
    "<|end|>\n"
    "{% endfor %}{% if add_generation_prompt %}<|assistant|>\n{% endif %}"
)


@dataclass(frozen=True)
class BuildResult:
    """What :func:`build_missing` did for one model."""

    model: str
    path: Path
    built: bool


def model_path(cfg: GardenConfig, spec: ModelSpec) -> Path:
    """Where ``spec``'s checkpoint lives: its ``source``, else ``<data_dir>/models/<name>``."""
    if spec.source is not None:
        return Path(spec.source).expanduser()
    return cfg.data_path() / "models" / spec.name


def _fingerprint(spec: TinyModelSpec) -> str:
    corpus = "".join(_corpus_texts())
    payload = json.dumps(
        {"spec": spec.model_dump(), "vocab": _VOCAB_SIZE, "template": _CHAT_TEMPLATE},
        sort_keys=True,
    )
    return hashlib.sha256((payload + corpus).encode()).hexdigest()[:16]


def is_built(path: Path, spec: TinyModelSpec) -> bool:
    """True when ``path`` holds a checkpoint built from exactly ``spec``."""
    stamp = path / _STAMP
    try:
        return bool(json.loads(stamp.read_text())["fingerprint"] == _fingerprint(spec))
    except (OSError, ValueError, KeyError):
        return False


def _corpus_texts() -> Iterator[str]:
    folder = resources.files("deployments") / "corpus"
    for entry in sorted(folder.iterdir(), key=lambda e: e.name):
        if entry.name.endswith(".txt"):
            yield entry.read_text(encoding="utf-8")


@functools.cache
def _trained_tokenizer() -> Any:
    """The byte-level BPE tokenizer, trained once per process (every model shares it)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=_VOCAB_SIZE,
        special_tokens=_SPECIAL,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    lines = [ln for text in _corpus_texts() for ln in text.splitlines() if ln.strip()]
    tok.train_from_iterator(lines, trainer=trainer)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        bos_token="<s>",
        eos_token="</s>",
        unk_token="<unk>",
        pad_token="</s>",
    )
    fast.chat_template = _CHAT_TEMPLATE
    return fast


def _write_tokenizer(out: Path) -> int:
    """Save the shared tokenizer into ``out``; return its vocabulary size."""
    fast = _trained_tokenizer()
    fast.save_pretrained(str(out))
    return len(fast)


def _write_weights(out: Path, spec: TinyModelSpec, vocab_size: int) -> None:
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    config = LlamaConfig(
        vocab_size=vocab_size,
        hidden_size=spec.hidden_size,
        intermediate_size=spec.intermediate_size,
        num_hidden_layers=spec.num_layers,
        num_attention_heads=spec.num_heads,
        num_key_value_heads=spec.num_heads,
        head_dim=64,
        max_position_embeddings=spec.max_position_embeddings,
        bos_token_id=_SPECIAL.index("<s>"),
        eos_token_id=_SPECIAL.index("</s>"),
        pad_token_id=_SPECIAL.index("</s>"),
        tie_word_embeddings=False,
        dtype="float32",
    )
    torch.manual_seed(spec.seed)
    model = LlamaForCausalLM(config)
    model.save_pretrained(str(out), safe_serialization=True)


def build_tiny_model(path: Path, spec: TinyModelSpec) -> None:
    """Build the checkpoint for ``spec`` into ``path`` atomically (replacing it)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}-", dir=path.parent))
    try:
        vocab = _write_tokenizer(tmp)
        _write_weights(tmp, spec, vocab)
        (tmp / _STAMP).write_text(
            json.dumps({"fingerprint": _fingerprint(spec), "spec": spec.model_dump()}, indent=2)
        )
        if path.exists():
            shutil.rmtree(path)
        tmp.rename(path)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp)


def build_missing(cfg: GardenConfig, *, force: bool = False) -> list[BuildResult]:
    """Build every ``tiny`` model of ``cfg`` whose checkpoint is missing or stale."""
    results = []
    for spec in cfg.models:
        if spec.tiny is None:
            continue
        path = model_path(cfg, spec)
        if force or not is_built(path, spec.tiny):
            build_tiny_model(path, spec.tiny)
            results.append(BuildResult(spec.name, path, True))
        else:
            results.append(BuildResult(spec.name, path, False))
    return results
