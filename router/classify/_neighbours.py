"""A nearest-exemplar vote over sentence embeddings: the semantic stage's second base.

A linear model over embeddings draws one boundary per domain; a prompt that
sits close to a few exemplars of a sub-field the boundary cuts through (a
pharmacology question among law-flavoured wording, say) is better told by
its nearest exemplars. The vote is fitted on the same exemplars and stacked
with the other bases (:class:`~router.classify._calibration.Stacker`), which
learns how far to trust it from out-of-fold votes.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from router.classify._calibration import Labels

__all__ = ["NeighbourVote"]

#: Of all the vote mass, this share is spread evenly over the classes, so that
#: a class none of the neighbours has keeps a small probability (no log 0).
_SMOOTHING = 1e-3


def _unit(x: NDArray[np.float32] | NDArray[np.float64]) -> NDArray[np.float32]:
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return np.asarray(x / np.maximum(norms, 1e-12), dtype=np.float32)


class NeighbourVote:
    """Each query's ``k`` most cosine-similar exemplars vote, weighted ``exp(sharpness * cos)``.

    ``embeddings`` and ``y`` are the exemplars (class indices ``0..n_classes-1``).
    """

    def __init__(
        self,
        embeddings: NDArray[np.float32] | NDArray[np.float64],
        y: Labels,
        n_classes: int,
        *,
        k: int,
        sharpness: float,
    ) -> None:
        if k < 1:
            raise ValueError(f"k must be >= 1, got {k}")
        if len(embeddings) != len(y):
            raise ValueError(f"{len(embeddings)} embeddings but {len(y)} labels")
        self._exemplars = _unit(embeddings)
        self._labels = np.asarray(y, dtype=np.int64)
        self._n_classes = n_classes
        self._k = min(k, len(y))
        self._sharpness = sharpness

    def log_proba(self, x: NDArray[np.float32] | NDArray[np.float64]) -> NDArray[np.float64]:
        """Rows of per-class log-probabilities for the query embeddings ``x``."""
        # One matrix-vector product per query: a batch's rows then come out
        # bit for bit as each query alone (a matrix product may sum in
        # another order), so batched and single classification agree.
        sims = np.stack([self._exemplars @ row for row in _unit(x)]).astype(np.float64)
        k = self._k
        top = (
            np.argpartition(-sims, k - 1, axis=1)[:, :k]
            if k < sims.shape[1]
            else np.broadcast_to(np.arange(sims.shape[1]), sims.shape)
        )
        nearest = np.take_along_axis(sims, top, axis=1)
        # Shifted by each row's best: the same weights, without overflow.
        weights = np.exp(self._sharpness * (nearest - nearest.max(axis=1, keepdims=True)))
        votes = np.zeros((len(sims), self._n_classes), dtype=np.float64)
        np.add.at(votes, (np.arange(len(sims))[:, None], self._labels[top]), weights)
        total = votes.sum(axis=1, keepdims=True)
        votes += _SMOOTHING * total / self._n_classes
        out: NDArray[np.float64] = np.log(votes / votes.sum(axis=1, keepdims=True))
        return out
