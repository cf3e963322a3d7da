"""The two stages of the default classifier, each a stack of calibrated linear models.

Both read the same MiniLM WordPiece token ids (one tokenization per query)
and both end in a :class:`~router.classify._calibration.Stacker` fitted on
out-of-fold predictions over the garden's exemplars (never evaluation data).

* :class:`LexicalStage`: bag-of-words, no torch and no context. Three
  bases: TF-IDF logistic regressions over token ids and over words (which
  words occur), and one over the mean of MiniLM's input token embeddings
  (what they mean). Well under a millisecond per query.
* :class:`SemanticStage`: a logistic regression over contextual MiniLM
  sentence embeddings and a vote of the nearest exemplars, stacked with the
  lexical bases. Several ms per query; the cascade calls it only when the
  lexical stage is unsure.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
from numpy.typing import NDArray

from router.classify._calibration import (
    Labels,
    LinearSoftmax,
    Matrix,
    Stacker,
    fold_indices,
    out_of_fold,
)
from router.classify._features import TokenTfIdf, WordTfIdf, static_embeddings, to_matrix
from router.classify._minilm import TokenIds
from router.classify._neighbours import NeighbourVote

__all__ = ["LexicalStage", "SemanticStage"]

#: Inverse L2 strength of the base models, chosen by 5-fold CV on the exemplars.
_BASE_C = 10.0
#: The nearest-exemplar vote: how many neighbours, and how sharply the
#: nearer ones count; chosen by leave-one-source-out CV on the exemplars
#: (docs/performance.md, "Routing").
_NEIGHBOURS = 20
_SHARPNESS = 20.0


def _fit(c: float, n_classes: int) -> Callable[[Matrix, Labels], LinearSoftmax]:
    def fit(x: Matrix, y: Labels) -> LinearSoftmax:
        return LinearSoftmax(x, y, n_classes, c=c)

    return fit


class LexicalStage:
    """Three bag-of-words logistic regressions, stacked and calibrated.

    The bases: TF-IDF over WordPiece tokens, TF-IDF over words and word
    pairs, and the static token embedding. ``oof`` keeps their out-of-fold
    log-probabilities over the training rows (in :meth:`bases` order), for
    the semantic stage's own stacker.
    """

    def __init__(
        self,
        texts: Sequence[str],
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
        self._tokens = TokenTfIdf(ids, table.shape[0])
        self._words = WordTfIdf(texts)
        features: list[Matrix] = [
            to_matrix(self._tokens.rows(ids), self._tokens.n_columns),
            to_matrix(self._words.rows(texts), self._words.n_columns),
            static_embeddings(ids, table),
        ]
        self.oof = [out_of_fold(fit, x, y, split, n_classes) for x in features]
        self._bases = [LinearSoftmax(x, y, n_classes, c=_BASE_C) for x in features]
        self._stacker = Stacker(self.oof, y, n_classes)

    def bases(
        self, texts: Sequence[str], ids: Sequence[TokenIds], table: NDArray[np.float32]
    ) -> list[NDArray[np.float64]]:
        """The deployed bases' log-probabilities: [token TF-IDF, word TF-IDF, static]."""
        tokens, words, static = self._bases
        return [
            tokens.log_proba_sparse(self._tokens.rows(ids)),
            words.log_proba_sparse(self._words.rows(texts)),
            static.log_proba(static_embeddings(ids, table)),
        ]

    def probabilities(self, bases: Sequence[NDArray[np.float64]]) -> NDArray[np.float64]:
        """Calibrated per-class probabilities from :meth:`bases`' output."""
        return self._stacker.proba(bases)


class SemanticStage:
    """Two bases over contextual embeddings, stacked with the lexical bases.

    A logistic regression over the embeddings, and a vote of each query's
    nearest exemplars (:class:`~router.classify._neighbours.NeighbourVote`).
    """

    def __init__(
        self,
        embeddings: NDArray[np.float32],
        y: Labels,
        n_classes: int,
        lexical_oof: Sequence[NDArray[np.float64]],
        *,
        folds: int,
        seed: int,
        neighbours: int = _NEIGHBOURS,
        sharpness: float = _SHARPNESS,
    ) -> None:
        split = fold_indices(y, folds, seed)
        x = embeddings.astype(np.float64)
        oof = out_of_fold(_fit(_BASE_C, n_classes), x, y, split, n_classes)

        def vote(train_x: Matrix, train_y: Labels) -> NeighbourVote:
            return NeighbourVote(train_x, train_y, n_classes, k=neighbours, sharpness=sharpness)

        votes = out_of_fold(vote, x, y, split, n_classes)
        self._base = LinearSoftmax(x, y, n_classes, c=_BASE_C)
        self._vote = vote(embeddings, y)
        self._stacker = Stacker([*lexical_oof, oof, votes], y, n_classes)

    def probabilities(
        self, embeddings: NDArray[np.float32], lexical_bases: Sequence[NDArray[np.float64]]
    ) -> NDArray[np.float64]:
        """Calibrated per-class probabilities, columns in class-index order."""
        own = self._base.log_proba(embeddings.astype(np.float64))
        return self._stacker.proba([*lexical_bases, own, self._vote.log_proba(embeddings)])
