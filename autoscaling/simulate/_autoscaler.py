"""What the controller sees and grants each control period (pure over model state).

:func:`context_of` builds a model's ``AutoscalingContext`` from what its
reporters last pushed, as Ray's controller does: total requests are the
time-weighted mean of the handle's running-per-replica and queued series
summed; custom metrics (``autoscaling.metrics``) are per-replica look-back means.
As in the live garden, the router's count of requests each specialist could
not take reaches the policy directly (its ``spilled`` callable, Ray's KV
store in production). :func:`grant` runs the budget arbiter on the garden
policy's own claims.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ray.serve.config import AutoscalingContext

from autoscaling.budget import allowances
from autoscaling.policy import load_of
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
        if series is None:
            continue
        for metric, points in series.pushed.items():
            value = window_mean([points], now)
            aggregated.setdefault(metric, {})[dep.replica_id(r.name)] = value
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


def grant(
    runs: Mapping[str, ModelRun],
    contexts: Mapping[str, AutoscalingContext],
    max_cost_per_hour: float | None,
    max_gpus: float | None,
) -> dict[str, int]:
    """Each model's allowance this period; marks ``capped`` on the models it holds back."""
    # The live policy's own claims (GardenPolicy.claim_now), not a copy of them.
    claims = [
        run.deployment.garden_policy().claim_now(contexts[name]) for name, run in runs.items()
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
