"""Cross-validation of the garden's classifier on its own exemplars, and thresholds from it.

Two schemes, reported side by side (``garden route-cv``):

* ``folds``: stratified random folds. Held-out rows share styles and
  sources with training rows, so this is the optimistic figure.
* ``sources``: leave-one-source-out. Every exemplar has a source (its
  style or origin, :mod:`cluster.exemplars`); each fold holds out one whole
  source, so the classifier is judged on a way of writing it never saw, as
  it will be on users' prompts.

Thresholds are chosen on the out-of-fold predictions of both schemes
together (:func:`calibrate_thresholds`), never on evaluation data.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

from cluster.config import GardenConfig
from router.classify import classifier_class, training_rows
from router.policy import Features, PolicyConfig

__all__ = ["Heldout", "accuracy_by_source", "calibrate_thresholds", "cross_validate"]

Scheme = Literal["folds", "sources"]


@dataclass(frozen=True, slots=True)
class Heldout:
    """One exemplar classified by a classifier fitted without it."""

    label: str
    source: str
    features: Features


def _splits(
    labels: Sequence[str], sources: Sequence[str], scheme: Scheme, folds: int, seed: int
) -> list[list[int]]:
    """Held-out index lists; every training split keeps two rows of every label."""
    if scheme == "sources":
        groups: dict[str, list[int]] = {}
        for i, source in enumerate(sources):
            groups.setdefault(source, []).append(i)
        held = list(groups.values())
    else:
        from sklearn.model_selection import StratifiedKFold

        splitter = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
        held = [list(h) for _, h in splitter.split(list(labels), list(labels))]
    usable = []
    for rows in held:
        out = set(rows)
        left = [label for i, label in enumerate(labels) if i not in out]
        if all(left.count(label) >= 2 for label in set(labels)):
            usable.append(rows)
    return usable


def cross_validate(
    garden: GardenConfig, scheme: Scheme, *, folds: int = 5, seed: int = 0
) -> list[Heldout]:
    """Every exemplar of ``garden``, classified by the configured classifier fitted without it.

    The classifier is ``router.classifier``'s class with its options, fitted
    once per fold. With ``sources``, a source whose removal would leave a
    label with fewer than two exemplars is not held out.
    """
    spec = garden.router.classifier
    cls = classifier_class(spec.import_path)
    rows, labels = training_rows(garden)
    texts = [r.text for r in rows]
    sources = [r.source for r in rows]
    out: list[Heldout] = []
    for held in _splits(labels, sources, scheme, folds, seed):
        skip = set(held)
        train = [i for i in range(len(rows)) if i not in skip]
        classifier: Any = cls([texts[i] for i in train], [labels[i] for i in train], **spec.options)
        features = classifier.classify_many([texts[i] for i in held])
        out.extend(Heldout(labels[i], sources[i], f) for i, f in zip(held, features, strict=True))
    return out


def _errors(rows: Sequence[Heldout], domain: str, threshold: float) -> tuple[int, int]:
    """(wrong specialist, missed) counts among rows predicted as ``domain`` or labelled so."""
    wrong = missed = 0
    for row in rows:
        confident = row.features.domain == domain and row.features.confidence >= threshold
        if confident and row.label != domain:
            wrong += 1
        elif row.label == domain and not confident:
            missed += 1
    return wrong, missed


#: Candidate thresholds: 0.30, 0.35, ..., 0.95.
_GRID = tuple(round(0.3 + 0.05 * step, 2) for step in range(14))


def calibrate_thresholds(
    heldout: Sequence[Heldout],
    policy: PolicyConfig,
    *,
    max_wrong: float = 0.03,
    grid: Sequence[float] = _GRID,
) -> dict[str, float]:
    """Per-domain confidence thresholds from out-of-fold predictions.

    Each specialist domain may send at most its share of ``max_wrong`` (the
    garden-wide wrong-specialist budget, split by how many rows each domain
    wins) of all rows to the wrong specialist; within that, the lowest
    threshold of ``grid`` (most coverage) is chosen. A wrong specialist costs
    the user a worse answer, a miss only the generalist's price, so the
    budget binds first and coverage is maximised under it.
    """
    n = len(heldout)
    domains = sorted(policy.owners)
    if not n or not domains:
        return {}
    won = {d: sum(r.features.domain == d for r in heldout) for d in domains}
    total = sum(won.values()) or 1
    out: dict[str, float] = {}
    for domain in domains:
        allowed = max_wrong * n * won[domain] / total
        fits = [t for t in grid if _errors(heldout, domain, t)[0] <= allowed]
        out[domain] = min(fits) if fits else max(grid)
    return out


def accuracy_by_source(heldout: Sequence[Heldout]) -> dict[str, float]:
    """Each source's accuracy of out-of-fold predictions (by top domain, before thresholds)."""
    by_source: dict[str, list[bool]] = {}
    for row in heldout:
        by_source.setdefault(row.source, []).append(row.features.domain == row.label)
    return {s: sum(v) / len(v) for s, v in sorted(by_source.items())}
