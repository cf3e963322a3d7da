"""Each model's budget allowance for one control period (pure).

:func:`autoscaling.budget.arbitrate` says what every model may hold. A cut
takes effect at once, but the replicas it frees keep running (and costing)
while they drain, so growth may only spend what is actually free. The
allowance is therefore arbitrated twice: once on the wishes, then again with
every model floored at what it keeps, wishes capped at the first grant, and
the ceilings reduced by what drains now or is about to. Held cost (starting,
running and draining replicas) then never exceeds the ceiling.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace

from autoscaling.budget import Claim, arbitrate

__all__ = ["allowances"]


def _less(ceiling: float | None, spent: float) -> float | None:
    return None if ceiling is None else ceiling - spent


def allowances(
    claims: Sequence[Claim],
    committed: Mapping[str, int],
    draining: Mapping[str, int],
    max_cost_per_hour: float | None,
    max_gpus: float | None,
) -> dict[str, int]:
    """Replicas each model may target now.

    ``committed`` is each model's current target (starting and running
    replicas), ``draining`` the replicas it is still shutting down.
    """
    granted = arbitrate(claims, max_cost_per_hour, max_gpus)
    cost = gpus = 0.0
    second: list[Claim] = []
    for c in claims:
        held = committed[c.model]
        # Ray steps a target above 1 down to 1 before 0, so at least 1 stays.
        keep = max(min(held, granted[c.model]), 1 if held > 1 else 0)
        leaving = draining.get(c.model, 0) + held - keep
        cost += c.cost_per_hour * leaving
        gpus += c.gpus * leaving
        second.append(
            replace(
                c,
                wish=granted[c.model],
                min_replicas=keep,
                max_replicas=max(keep, granted[c.model]),
            )
        )
    return arbitrate(second, _less(max_cost_per_hour, cost), _less(max_gpus, gpus))
