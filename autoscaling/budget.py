"""The budget arbiter: which model gets the next replica when wishes exceed the budget.

Pure. Every model first gets its ``min_replicas`` (the config guarantees the
budget covers them). Then replicas are granted one at a time, up to each
model's wish (already within its max), in order of priority, then of
incumbency (a replica the model already holds before a new one), then of the
SLO-attaining throughput the next replica adds per unit of cost, for as long
as the garden's cost and GPU ceilings allow.

Incumbency keeps grants stable: without it, two models whose demands cross
back and forth would trade the last affordable replica every control
period, and each trade throws away a cold start. A held replica is released
when its own model stops claiming it (after that model's downscale delay),
or to a claim of higher priority.
"""

from __future__ import annotations

import heapq
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace

__all__ = ["Claim", "allowances", "arbitrate"]


@dataclass(frozen=True, slots=True)
class Claim:
    """One model's wish for replicas, and what its replicas cost and yield."""

    model: str
    wish: int
    demand: float  # requests it should be serving (running + queued + spilled)
    target_ongoing_requests: float  # requests one replica serves within its TTFT SLO
    min_replicas: int
    max_replicas: int
    cost_per_hour: float
    gpus: float = 0.0
    priority: int = 0
    held: int = 0  # replicas the model holds now (starting or running)
    #: Fractional replicas its load needs now (None: demand / target_ongoing_requests).
    need: float | None = None

    @property
    def spare(self) -> float:
        """Requests its held replicas could still take at their target (0 when full)."""
        need = self.demand / self.target_ongoing_requests if self.need is None else self.need
        return max(0.0, (self.held - need) * self.target_ongoing_requests)

    def gain(self, replica: int) -> float:
        """Requests served within the SLO that the ``replica``-th replica adds.

        Measured on ``need`` when the claim has it (the policy's own demand,
        in work: one long prompt fills a replica that a request count would
        call nearly idle), else on ``demand`` over ``target_ongoing_requests``.
        """
        need = self.demand / self.target_ongoing_requests if self.need is None else self.need
        return self.target_ongoing_requests * max(0.0, min(need, float(replica)) - (replica - 1))

    def rank(self, replica: int) -> tuple[int, int, float]:
        """Heap key of the ``replica``-th replica: priority, then incumbency, then value."""
        return (-self.priority, 0 if replica <= self.held else 1, -self.value(replica))

    def value(self, replica: int) -> float:
        """``gain`` per unit of cost (a free replica is worth its whole gain)."""
        gain = self.gain(replica)
        return gain / self.cost_per_hour if self.cost_per_hour > 0 else gain * 1e9


def arbitrate(
    claims: Sequence[Claim],
    max_cost_per_hour: float | None = None,
    max_gpus: float | None = None,
) -> dict[str, int]:
    """Replicas granted to each model; never above either ceiling beyond the minimums."""
    granted = {c.model: c.min_replicas for c in claims}
    cost = sum(c.cost_per_hour * c.min_replicas for c in claims)
    gpus = sum(c.gpus * c.min_replicas for c in claims)
    by_model = {c.model: c for c in claims}
    # Best first on (priority, incumbency, value of the next replica); the name breaks ties.
    heap = [
        (*c.rank(c.min_replicas + 1), c.model)
        for c in claims
        if min(c.wish, c.max_replicas) > c.min_replicas
    ]
    heapq.heapify(heap)
    while heap:
        model = heapq.heappop(heap)[-1]
        claim = by_model[model]
        if max_cost_per_hour is not None and cost + claim.cost_per_hour > max_cost_per_hour + 1e-9:
            continue
        if max_gpus is not None and gpus + claim.gpus > max_gpus + 1e-9:
            continue
        granted[model] += 1
        cost += claim.cost_per_hour
        gpus += claim.gpus
        if granted[model] < min(claim.wish, claim.max_replicas):
            heapq.heappush(heap, (*claim.rank(granted[model] + 1), model))
    return granted


def _less(ceiling: float | None, spent: float) -> float | None:
    return None if ceiling is None else ceiling - spent


def allowances(
    claims: Sequence[Claim],
    committed: Mapping[str, int],
    draining: Mapping[str, int],
    max_cost_per_hour: float | None,
    max_gpus: float | None,
) -> dict[str, int]:
    """Replicas each model may target now, counting the replicas still draining.

    :func:`arbitrate` says what every model may hold. A cut takes effect at
    once, but the replicas it frees keep running (and costing) while they
    drain, so growth may only spend what is actually free. The allowance is
    therefore arbitrated twice: once on the wishes, then again with every
    model floored at what it keeps, wishes capped at the first grant, and the
    ceilings reduced by what drains now or is about to. Held cost (starting,
    running and draining replicas) then never exceeds the ceiling.

    ``committed`` is each model's current target (starting and running
    replicas), ``draining`` the replicas it is still shutting down. The live
    ledger (:class:`autoscaling._ledger.Ledger`) and the simulator both call
    this; only where ``draining`` comes from differs.
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
