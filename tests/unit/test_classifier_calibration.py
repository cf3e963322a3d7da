"""Stacked calibration on synthetic data: probabilities that mean what they say.

Three Gaussian classes in 2-D, some points near their class centre (easy)
and some in the overlap (hard). Two noisy views of each point feed two
linear bases; the stacker is fitted on their out-of-fold log-probabilities,
and everything is evaluated on rows held out of the whole fit (outer CV).
"""

from __future__ import annotations

import functools

import numpy as np
import pytest
from numpy.typing import NDArray

from router.classify._calibration import (
    LinearSoftmax,
    Stacker,
    fold_indices,
    out_of_fold,
)

pytestmark = pytest.mark.unit

K = 3


def _data(seed: int = 0) -> tuple[list[NDArray[np.float64]], NDArray[np.int64], NDArray[np.bool_]]:
    rng = np.random.default_rng(seed)
    n = 900
    y = rng.integers(0, K, n).astype(np.int64)
    centres = np.array([[0.0, 3.0], [2.6, -1.5], [-2.6, -1.5]])
    easy = rng.random(n) < 0.5
    spread = np.where(easy, 0.6, 2.2)[:, None]
    points = centres[y] + rng.normal(size=(n, 2)) * spread
    views = [points + rng.normal(scale=0.5, size=points.shape) for _ in range(2)]
    return views, y, easy


def _fit(x: NDArray[np.float64], y: NDArray[np.int64]) -> LinearSoftmax:
    return LinearSoftmax(x, y, K, c=1.0)


@functools.cache
def _held_out_probabilities() -> tuple[NDArray[np.float64], NDArray[np.int64], NDArray[np.bool_]]:
    views, y, easy = _data()
    probs = np.zeros((len(y), K))
    for train, held in fold_indices(y, 5, seed=1):
        inner = fold_indices(y[train], 5, seed=2)
        oof = [out_of_fold(_fit, v[train], y[train], inner, K) for v in views]
        stacker = Stacker(oof, y[train], K)
        bases = [_fit(v[train], y[train]).log_proba(v[held]) for v in views]
        probs[held] = stacker.proba(bases)
    return probs, y, easy


def test_probabilities_are_distributions_and_confident_where_it_is_easy() -> None:
    probs, _, easy = _held_out_probabilities()
    assert np.all((probs >= 0.0) & (probs <= 1.0))
    assert np.allclose(probs.sum(axis=1), 1.0)
    confidence = probs.max(axis=1)
    assert confidence[easy].mean() > confidence[~easy].mean() + 0.05


def test_confidence_matches_accuracy_on_held_out_rows() -> None:
    probs, y, _ = _held_out_probabilities()
    confidence, correct = probs.max(axis=1), probs.argmax(axis=1) == y
    assert abs(confidence.mean() - correct.mean()) < 0.04
    # Expected calibration error over five confidence bins.
    edges = np.linspace(1 / K, 1.0, 6)
    bins = np.clip(np.digitize(confidence, edges[1:-1]), 0, 4)
    ece = sum(
        abs(confidence[bins == b].mean() - correct[bins == b].mean()) * (bins == b).mean()
        for b in range(5)
        if (bins == b).any()
    )
    assert ece < 0.05


def test_unseparable_data_gets_low_confidence() -> None:
    rng = np.random.default_rng(3)
    y = rng.integers(0, K, 600).astype(np.int64)
    noise = rng.normal(size=(600, 4))  # features independent of the labels
    split = fold_indices(y, 5, seed=0)
    stacker = Stacker([out_of_fold(_fit, noise, y, split, K)], y, K)
    probs = stacker.proba([_fit(noise, y).log_proba(noise)])
    assert probs.max(axis=1).mean() < 0.45  # about the class prior, 1/3


def test_every_class_needs_two_examples() -> None:
    with pytest.raises(ValueError, match="at least 2 exemplars"):
        fold_indices(np.array([0, 0, 1, 1, 2]), 5, seed=0)


def test_the_neighbour_vote_follows_the_nearest_exemplars() -> None:
    from router.classify._neighbours import NeighbourVote

    rng = np.random.default_rng(0)
    centres = np.eye(3, 8, dtype=np.float32) * 5
    x = np.concatenate([c + rng.normal(0, 0.3, (20, 8)) for c in centres]).astype(np.float32)
    y = np.repeat(np.arange(3), 20)
    vote = NeighbourVote(x, y, 3, k=5, sharpness=20.0)
    queries = centres + rng.normal(0, 0.3, (3, 8)).astype(np.float32)
    logp = vote.log_proba(queries)
    assert list(logp.argmax(axis=1)) == [0, 1, 2]
    assert np.allclose(np.exp(logp).sum(axis=1), 1.0)
    assert np.isfinite(logp).all()  # smoothed: no class at log 0
    # Scale does not matter (cosine), and k above the exemplar count is capped.
    assert np.allclose(vote.log_proba(queries * 10), logp, atol=1e-5)
    whole = NeighbourVote(x, y, 3, k=1000, sharpness=20.0).log_proba(queries)
    assert list(whole.argmax(axis=1)) == [0, 1, 2]
    with pytest.raises(ValueError, match="k must be >= 1"):
        NeighbourVote(x, y, 3, k=0, sharpness=1.0)


def test_two_classes_match_sklearn_binary_probabilities() -> None:
    from sklearn.linear_model import LogisticRegression

    rng = np.random.default_rng(3)
    x = rng.normal(size=(60, 4))
    y = (x[:, 0] + 0.5 * rng.normal(size=60) > 0).astype(np.int64)
    model = LinearSoftmax(x, y, 2, c=1.0)
    got = np.exp(model.log_proba(x))
    want = LogisticRegression(C=1.0, solver="newton-cg", max_iter=1000).fit(x, y).predict_proba(x)
    assert got.shape == (60, 2)
    np.testing.assert_allclose(got, want, atol=1e-6)
