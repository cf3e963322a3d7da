"""The default classifier: a fast lexical stage, and a semantic stage when it is unsure."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from numpy.typing import NDArray

from router.classify._stages import LexicalStage, SemanticStage
from router.classify._text import clip
from router.policy import Features

__all__ = ["CascadeClassifier"]


class CascadeClassifier:
    """Lexical first; below ``accept`` confidence, the mean of both stages decides.

    Fitted at construction on ``texts``/``labels`` (the garden's exemplars).
    With ``semantic`` false only the lexical stage runs (no torch needed).
    """

    def __init__(
        self,
        texts: Sequence[str],
        labels: Sequence[str],
        *,
        accept: float = 0.9,
        semantic: bool = True,
    ) -> None:
        if not 0.0 < accept <= 1.0:
            raise ValueError(f"accept must be in (0, 1], got {accept}")
        self.accept = accept
        self._lexical = LexicalStage(texts, labels)
        self._semantic = SemanticStage(texts, labels) if semantic else None
        self.domains = self._lexical.classes

    def classify(self, text: str) -> Features:
        """The domain of one request's text, with calibrated confidence."""
        return self.classify_many([text])[0]

    def classify_many(self, texts: Sequence[str]) -> list[Features]:
        """:meth:`classify` for many texts at once (same results, batched)."""
        clipped = [clip(t) for t in texts]
        lexical = self._lexical.probabilities(clipped)
        out: list[Features | None] = [None] * len(clipped)
        unsure = [i for i, row in enumerate(lexical) if row.max() < self.accept]
        if self._semantic is not None and unsure:
            semantic = self._semantic.probabilities([clipped[i] for i in unsure])
            for row, i in zip(semantic, unsure, strict=True):
                out[i] = self._features((lexical[i] + row) / 2.0, "semantic")
        return [
            f if f is not None else self._features(lexical[i], "lexical") for i, f in enumerate(out)
        ]

    def _features(self, probs: NDArray[np.float64], stage: str) -> Features:
        best = int(probs.argmax())
        scores = {d: round(float(p), 4) for d, p in zip(self.domains, probs, strict=True)}
        return Features(self.domains[best], min(1.0, float(probs[best])), scores, stage)
