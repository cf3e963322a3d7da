"""A static partition of a budget: what a Ray user with a cost ceiling would set (pure).

Ray Serve has no garden-wide budget. A Ray user who must stay under one
sets each deployment's ``max_replicas`` so that all of them at their
maximum fit the budget, in proportion to each model's peak demand, and
lets Ray's own policy scale within those bounds. :func:`partition` computes
those maxima; the simulator's ``static-partition`` policy replays them.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

__all__ = ["partition"]


def partition(
    needs: Mapping[str, int],
    cost_per_hour: Mapping[str, float],
    min_replicas: Mapping[str, int],
    budget: float,
    max_replicas: Mapping[str, int] | None = None,
) -> dict[str, int]:
    """Each model's ``max_replicas``: shares of ``budget`` in proportion to ``needs``.

    ``needs`` is the replicas each model's peak demand needs. Each model's
    share is its need scaled so that all needs at their cost sum to the
    budget, rounded down, never under its ``min_replicas`` nor 1 (a
    deployment's maximum is at least 1) and never over its ``max_replicas``
    (the bound the garden has too); the budget left over goes one replica
    at a time to the largest shortfall against the share that still fits,
    each model up to its bound (a free model takes its bound at once).
    ValueError when the floors alone exceed the budget.
    """
    floors = {m: max(1, min_replicas[m]) for m in needs}
    caps = {m: max(floors[m], (max_replicas or {}).get(m, 1000)) for m in needs}
    floor_cost = sum(cost_per_hour[m] * floors[m] for m in needs)
    if floor_cost > budget + 1e-9:
        raise ValueError(
            f"budget {budget:g}/h is below every model at max(1, min_replicas) ({floor_cost:g}/h)"
        )
    full = sum(cost_per_hour[m] * max(needs[m], floors[m]) for m in needs)
    scale = budget / full if full > 0 else 0.0
    share = {m: max(needs[m], floors[m]) * scale for m in needs}
    maxes = {m: min(caps[m], max(floors[m], math.floor(share[m] + 1e-9))) for m in needs}
    spent = sum(cost_per_hour[m] * maxes[m] for m in needs)
    while spent > budget + 1e-9:  # floors above a small share: take back from the richest
        over = [m for m in needs if maxes[m] > floors[m]]
        m = max(over, key=lambda k: (maxes[k] - share[k], k))
        maxes[m] -= 1
        spent -= cost_per_hour[m]
    while True:
        fits = [
            m for m in needs if maxes[m] < caps[m] and spent + cost_per_hour[m] <= budget + 1e-9
        ]
        if not fits:
            return maxes
        m = max(fits, key=lambda k: (share[k] - maxes[k], k))
        maxes[m] += 1
        spent += cost_per_hour[m]
