"""What the controller sees and grants each control period (pure over model state).

:func:`context_of` builds a model's ``AutoscalingContext`` from what its
reporters last pushed, as Ray's controller does: total requests are the
time-weighted mean of the handle's running-per-replica and queued series
summed; custom metrics are per-replica means (``kv_cache_usage``) plus the
no spill metric: as in the live garden, the router's count of requests each
specialist could not take reaches the policy directly (its ``spilled``
callable, Ray's KV store in production). :func:`grant` runs the budget
arbiter on the garden policy's wishes.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from ray.serve.config import AutoscalingContext

from autoscaling._load import Capacity, desired_replicas
from autoscaling.budget import Claim
from autoscaling.policy import KV_USAGE_METRIC, load_of
from autoscaling.simulate._allowance import allowances
from autoscaling.simulate._garden import ModelRun
from autoscaling.simulate._metrics import window_mean

__all__ = ["QUEUED", "context_of", "demand_of", "grant"]

#: Key of the handle's queued-requests series (Ray's QUEUED_REQUESTS_KEY role).
QUEUED = "queued"


def context_of(run: ModelRun, now: float) -> AutoscalingContext:
    """``run``'s AutoscalingContext at ``now`` from the last pushed metrics."""
    running = run.running()
    pushed = run.handle.pushed
    queued = pushed.get(QUEUED, [])
    per_replica = [pushed[r.name] for r in running if r.name in pushed]
    aggregated: dict[str, dict[Any, float]] = {}
    dep = run.deployment
    for r in running:
        series = run.kv.get(r.name)
        if series is not None and KV_USAGE_METRIC in series.pushed:
            value = window_mean([series.pushed[KV_USAGE_METRIC]], now)
            aggregated.setdefault(KV_USAGE_METRIC, {})[dep.replica_id(r.name)] = value
    return dep.context(
        now,
        target=run.target,
        running=[dep.replica_id(r.name) for r in running],
        total_requests=window_mean([*per_replica, queued], now),
        queued_requests=window_mean([queued], now),
        aggregated=aggregated,
    )


def demand_of(run: ModelRun, ctx: AutoscalingContext) -> float:
    """Requests the model should be serving, as the garden policy counts them."""
    return load_of(ctx, float(run.spilled)).demand


def _wish(run: ModelRun, ctx: AutoscalingContext) -> int:
    # What the garden policy claims from the ledger: its wish before the delays,
    # but never below what it holds while a downscale waits out its delay.
    capacity = Capacity(run.deployment.slots, float(run.deployment.kwargs.get("kv_target", 0.85)))
    load = load_of(ctx, float(run.spilled))
    wish = desired_replicas(load, capacity, int(ctx.current_num_replicas))
    bounded = max(
        run.deployment.min_replicas, min(run.deployment.max_replicas, math.ceil(wish - 1e-9))
    )
    return max(bounded, int(ctx.target_num_replicas))


def grant(
    runs: Mapping[str, ModelRun],
    contexts: Mapping[str, AutoscalingContext],
    max_cost_per_hour: float | None,
    max_gpus: float | None,
) -> dict[str, int]:
    """Each model's allowance this period; marks ``capped`` on the models it holds back."""
    claims = [
        Claim(
            model=name,
            wish=_wish(run, contexts[name]),
            demand=demand_of(run, contexts[name]),
            slots=run.deployment.slots,
            min_replicas=run.deployment.min_replicas,
            max_replicas=run.deployment.max_replicas,
            cost_per_hour=run.spec.cost_per_hour,
            gpus=run.spec.resources.gpus,
            priority=run.spec.autoscaling.priority,
            held=run.target,
        )
        for name, run in runs.items()
    ]
    granted = allowances(
        claims,
        committed={name: run.target for name, run in runs.items()},
        draining={name: run.draining() for name, run in runs.items()},
        max_cost_per_hour=max_cost_per_hour,
        max_gpus=max_gpus,
    )
    for claim in claims:
        runs[claim.model].capped = claim.wish > granted[claim.model]
    return granted
