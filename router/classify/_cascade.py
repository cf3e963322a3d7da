"""The default classifier: a fast lexical stage, and a semantic stage when it is unsure."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from numpy.typing import NDArray

from router.classify._calibration import as_labels
from router.classify._minilm import (
    ContextualEncoder,
    load_token_table,
    load_tokenizer,
    tokenize,
)
from router.classify._stages import LexicalStage, SemanticStage
from router.classify._text import clip
from router.policy import Features

__all__ = ["CascadeClassifier"]


class CascadeClassifier:
    """Lexical stage first; below ``accept`` confidence, the semantic stage decides.

    Fitted at construction on ``texts``/``labels`` (the garden's exemplars);
    every stage's confidence is calibrated by ``folds``-fold cross-validation
    on them. The options (``router.classifier.options`` in the config):

    * ``accept``: lexical confidence at which the semantic stage is skipped.
      0.9 was chosen by cross-validation on the exemplars: the cascade is
      then as accurate as running both stages on every query, while about
      three queries in four skip the transformer.
    * ``semantic``: false runs only the lexical stage (torch is never imported).
    * ``layers``, ``max_tokens``, ``quantize``, ``threads``: the contextual
      encoder (see :class:`~router.classify._minilm.ContextualEncoder`); the
      defaults (all 6 layers, 128 tokens, int8, one thread) keep a semantic
      decision (with the nearest-exemplar vote) within about 11 ms at the
      p99 on two cores, whatever the prompt's length. Against 4 layers at
      48 tokens they gained 1.5 points of leave-one-source-out accuracy on
      the exemplars (0.883 -> 0.898 at the same wrong-specialist rate), and
      the vote 2.3 more (docs/performance.md).
    * ``folds``, ``seed``: the cross-validation of the calibration.

    Pickles without the tokenizer, token table and encoder; unpickling
    reloads them from the installed model package.
    """

    def __init__(
        self,
        texts: Sequence[str],
        labels: Sequence[str],
        *,
        accept: float = 0.9,
        semantic: bool = True,
        layers: int = 6,
        max_tokens: int = 128,
        quantize: bool = True,
        threads: int = 1,
        folds: int = 5,
        seed: int = 0,
    ) -> None:
        if not 0.0 < accept <= 1.0:
            raise ValueError(f"accept must be in (0, 1], got {accept}")
        if len(texts) != len(labels):
            raise ValueError(f"{len(texts)} texts but {len(labels)} labels")
        self.accept = accept
        self._encoder_options: dict[str, Any] | None = (
            {"layers": layers, "max_tokens": max_tokens, "quantize": quantize, "threads": threads}
            if semantic
            else None
        )
        self.domains, y = as_labels(labels)
        self._load_assets()
        clipped = [clip(t) for t in texts]
        ids = tokenize(self._tokenizer, clipped)
        n = len(self.domains)
        self._lexical = LexicalStage(clipped, ids, y, n, self._table, folds=folds, seed=seed)
        self._semantic: SemanticStage | None = None
        if self._encoder is not None:
            embeddings = self._encoder.encode(ids)
            self._semantic = SemanticStage(
                embeddings, y, n, self._lexical.oof, folds=folds, seed=seed
            )
        # Only the fit needs the out-of-fold rows; they would bloat the cache.
        self._lexical.oof = []

    def _load_assets(self) -> None:
        self._tokenizer = load_tokenizer()
        self._table = load_token_table()
        opts = self._encoder_options
        self._encoder = ContextualEncoder(**opts) if opts is not None else None

    def classify(self, text: str) -> Features:
        """The domain of one request's text, with calibrated confidence."""
        return self.classify_many([text])[0]

    def classify_many(self, texts: Sequence[str]) -> list[Features]:
        """:meth:`classify` for many texts at once (same results)."""
        if not texts:
            return []
        clipped = [clip(t) for t in texts]
        ids = tokenize(self._tokenizer, clipped)
        bases = self._lexical.bases(clipped, ids, self._table)
        lexical = self._lexical.probabilities(bases)
        out = [self._features(row, "lexical") for row in lexical]
        unsure = [i for i, row in enumerate(lexical) if row.max() < self.accept]
        if self._semantic is not None and self._encoder is not None and unsure:
            embeddings = self._encoder.encode([ids[i] for i in unsure])
            semantic = self._semantic.probabilities(embeddings, [b[unsure] for b in bases])
            for row, i in zip(semantic, unsure, strict=True):
                out[i] = self._features(row, "semantic")
        return out

    def _features(self, probs: NDArray[np.float64], stage: str) -> Features:
        best = int(probs.argmax())
        scores = {d: round(float(p), 4) for d, p in zip(self.domains, probs, strict=True)}
        return Features(self.domains[best], min(1.0, float(probs[best])), scores, stage)

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        for heavy in ("_tokenizer", "_table", "_encoder"):
            state.pop(heavy, None)
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._load_assets()
