"""The two stages of the default classifier, each a stack of calibrated linear models.

Both read the same MiniLM WordPiece token ids (one tokenization per query)
and both end in a :class:`~router.classify._calibration.Stacker` fitted on
out-of-fold predictions over the garden's exemplars (never evaluation data).

* :class:`LexicalStage`: bag-of-tokens, no torch and no context. Two bases,
  a TF-IDF logistic regression over token ids (which words occur) and a
  logistic regression over the mean of MiniLM's input token embeddings
  (what they mean: ``ibuprofen`` lands near ``aspirin`` even when only one
  occurs in the exemplars). About 0.2 ms per query.
* :class:`SemanticStage`: a logistic regression over contextual MiniLM
  sentence embeddings, stacked with the lexical bases. Several ms per query;
  the cascade calls it only when the lexical stage is unsure.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
from numpy.typing import NDArray
from scipy import sparse

from router.classify._calibration import (
    Labels,
    LinearSoftmax,
    Matrix,
    Stacker,
    fold_indices,
    out_of_fold,
)
from router.classify._minilm import TokenIds

__all__ = ["LexicalStage", "SemanticStage", "static_embeddings"]

#: Inverse L2 strength of the base models, chosen by 5-fold CV on the exemplars.
_BASE_C = 10.0


def _fit(c: float, n_classes: int) -> Callable[[Matrix, Labels], LinearSoftmax]:
    def fit(x: Matrix, y: Labels) -> LinearSoftmax:
        return LinearSoftmax(x, y, n_classes, c=c)

    return fit


def static_embeddings(ids: Sequence[TokenIds], table: NDArray[np.float32]) -> NDArray[np.float64]:
    """L2-normalised mean token embedding of each row (zeros for no tokens)."""
    out = np.zeros((len(ids), table.shape[1]), dtype=np.float64)
    for i, row in enumerate(ids):
        if len(row):
            mean = table[row].mean(axis=0, dtype=np.float64)
            out[i] = mean / max(float(np.linalg.norm(mean)), 1e-12)
    return out


class _TfIdf:
    """Sublinear TF-IDF over token ids, L2-normalised (scikit-learn's formula).

    The vector is normalised over all of a text's tokens, then only tokens
    seen at fit time are kept, as columns ``0..n_columns-1``: the result
    equals a whole-vocabulary TF-IDF (an unseen token would get a zero
    weight in every model) while the logistic regressions fit on 10k
    columns instead of 30k, several times faster.
    """

    def __init__(self, ids: Sequence[TokenIds], vocab_size: int) -> None:
        df = np.zeros(vocab_size, dtype=np.float64)
        for row in ids:
            df[np.unique(row)] += 1.0
        self.idf = np.log((1.0 + len(ids)) / (1.0 + df)) + 1.0
        seen = np.flatnonzero(df)
        self.column = np.full(vocab_size, -1, dtype=np.int64)
        self.column[seen] = np.arange(len(seen))
        self.n_columns = len(seen)

    def rows(self, ids: Sequence[TokenIds]) -> list[tuple[NDArray[np.int64], NDArray[np.float64]]]:
        """Each row's non-zero (columns, weights)."""
        out = []
        for row in ids:
            uniq, counts = np.unique(row, return_counts=True)
            weights = (1.0 + np.log(counts)) * self.idf[uniq]
            norm = float(np.linalg.norm(weights))
            cols = self.column[uniq]
            keep = cols >= 0
            out.append((cols[keep], weights[keep] / norm if norm else weights[keep]))
        return out

    def transform(self, ids: Sequence[TokenIds]) -> sparse.csr_matrix:
        """:meth:`rows` as a sparse matrix."""
        rows = self.rows(ids)
        indptr = np.cumsum([0] + [len(cols) for cols, _ in rows])
        cols = np.concatenate([c for c, _ in rows]) if rows else np.zeros(0, dtype=np.int64)
        vals = np.concatenate([v for _, v in rows]) if rows else np.zeros(0)
        return sparse.csr_matrix((vals, cols, indptr), shape=(len(rows), self.n_columns))


class LexicalStage:
    """TF-IDF and static-embedding logistic regressions, stacked and calibrated.

    ``oof`` keeps the bases' out-of-fold log-probabilities over the training
    rows (in :meth:`bases` order), for the semantic stage's own stacker.
    """

    def __init__(
        self,
        ids: Sequence[TokenIds],
        y: Labels,
        n_classes: int,
        table: NDArray[np.float32],
        *,
        folds: int,
        seed: int,
    ) -> None:
        split = fold_indices(y, folds, seed)
        fit = _fit(_BASE_C, n_classes)
        self._tfidf = _TfIdf(ids, table.shape[0])
        tfidf = self._tfidf.transform(ids)
        static = static_embeddings(ids, table)
        self.oof = [
            out_of_fold(fit, tfidf, y, split, n_classes),
            out_of_fold(fit, static, y, split, n_classes),
        ]
        self._bases = [
            LinearSoftmax(tfidf, y, n_classes, c=_BASE_C),
            LinearSoftmax(static, y, n_classes, c=_BASE_C),
        ]
        self._stacker = Stacker(self.oof, y, n_classes)

    def bases(
        self, ids: Sequence[TokenIds], table: NDArray[np.float32]
    ) -> list[NDArray[np.float64]]:
        """The deployed bases' log-probabilities: [TF-IDF, static embedding]."""
        tfidf, static = self._bases
        return [
            tfidf.log_proba_sparse(self._tfidf.rows(ids)),
            static.log_proba(static_embeddings(ids, table)),
        ]

    def probabilities(self, bases: Sequence[NDArray[np.float64]]) -> NDArray[np.float64]:
        """Calibrated per-class probabilities from :meth:`bases`' output."""
        return self._stacker.proba(bases)


class SemanticStage:
    """Logistic regression on contextual embeddings, stacked with the lexical bases."""

    def __init__(
        self,
        embeddings: NDArray[np.float32],
        y: Labels,
        n_classes: int,
        lexical_oof: Sequence[NDArray[np.float64]],
        *,
        folds: int,
        seed: int,
    ) -> None:
        split = fold_indices(y, folds, seed)
        x = embeddings.astype(np.float64)
        oof = out_of_fold(_fit(_BASE_C, n_classes), x, y, split, n_classes)
        self._base = LinearSoftmax(x, y, n_classes, c=_BASE_C)
        self._stacker = Stacker([*lexical_oof, oof], y, n_classes)

    def probabilities(
        self, embeddings: NDArray[np.float32], lexical_bases: Sequence[NDArray[np.float64]]
    ) -> NDArray[np.float64]:
        """Calibrated per-class probabilities, columns in class-index order."""
        own = self._base.log_proba(embeddings.astype(np.float64))
        return self._stacker.proba([*lexical_bases, own])
