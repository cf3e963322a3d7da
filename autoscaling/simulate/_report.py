"""The replay's outcome as one JSON-ready dict (pure over the finished state)."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from autoscaling.simulate._garden import ModelRun
from autoscaling.simulate._replica import Job

__all__ = ["percentile", "summarize"]


def percentile(sorted_values: Sequence[float], q: float) -> float | None:
    """Nearest-rank ``q`` quantile (0 < q <= 1) of ascending values; None when empty."""
    if not sorted_values:
        return None
    rank = max(1, math.ceil(q * len(sorted_values)))
    return sorted_values[rank - 1]


def _r(x: float | None, digits: int = 4) -> float | None:
    return None if x is None else round(x, digits)


def _ttft_ms(job: Job) -> float | None:
    if job.rejected or job.first_token_s is None:
        return None
    return (job.first_token_s - job.arrival_s) * 1000.0


def _share(served: int, owned: int) -> float | None:
    return _r(served / owned) if owned else None


def summarize(
    jobs: Sequence[Job],
    runs: Mapping[str, ModelRun],
    *,
    owners: Mapping[str, str],
    max_cost_rate: float,
    series: dict[str, Any],
) -> dict[str, Any]:
    """Attainment, latency quantiles, cost, scaling and the specialists' share.

    A rejected request misses. Attainment is scored twice, the same way for
    every policy: ``ttft_slo_attainment`` against each model's flat
    ``slo.ttft_ms``, and ``ttft_slo_attainment_sized`` against the
    size-aware objective (``SLOSpec.ttft_ms_for``: the flat one plus
    ``ttft_ms_per_1k_prompt_tokens`` per 1,000 prompt tokens).
    ``specialist_share`` is the fraction of a specialist domain's requests
    that its own specialist served (overall, and per specialist).
    """
    slo = {name: run.spec.slo for name, run in runs.items()}
    ttfts: list[float] = []
    met = met_sized = rejected = spilled = owned = own_served = 0
    per_model: dict[str, dict[str, int]] = {
        name: {"requests": 0, "met": 0, "met_sized": 0, "owned": 0, "own_served": 0}
        for name in runs
    }
    for job in jobs:
        owner = owners.get(job.domain)
        if owner is not None:
            owned += 1
            per_model[owner]["owned"] += 1
            if job.model == owner and not job.rejected:
                own_served += 1
                per_model[owner]["own_served"] += 1
        spilled += job.spilled_from is not None
        ttft = _ttft_ms(job)
        if ttft is None:
            rejected += 1
            continue
        ttfts.append(ttft)
        row = per_model[job.model]
        row["requests"] += 1
        if ttft <= slo[job.model].ttft_ms:
            met += 1
            row["met"] += 1
        if ttft <= slo[job.model].ttft_ms_for(job.input_tokens):
            met_sized += 1
            row["met_sized"] += 1
    ttfts.sort()
    hours = {name: run.replica_s / 3600.0 for name, run in runs.items()}
    cost = {name: hours[name] * run.spec.cost_per_hour for name, run in runs.items()}
    specialists = set(owners.values())
    models = {
        name: {
            "requests": row["requests"],
            "ttft_slo_attainment": _r(row["met"] / row["requests"]) if row["requests"] else None,
            "ttft_slo_attainment_sized": _r(row["met_sized"] / row["requests"])
            if row["requests"]
            else None,
            **(
                {"specialist_share": _share(row["own_served"], row["owned"])}
                if name in specialists
                else {}
            ),
            "target_ongoing_requests": _r(runs[name].deployment.target_ongoing_requests),
            "peak_demand": _r(runs[name].peak_demand),
            "scale_events": runs[name].scale_events,
        }
        for name, row in per_model.items()
    }
    return {
        "requests": len(jobs),
        "rejected": rejected,
        "ttft_slo_attainment": _r(met / len(jobs)) if jobs else None,
        "ttft_slo_attainment_sized": _r(met_sized / len(jobs)) if jobs else None,
        "specialist_share": _share(own_served, owned),
        "ttft_p50_ms": _r(percentile(ttfts, 0.50), 1),
        "ttft_p99_ms": _r(percentile(ttfts, 0.99), 1),
        "replica_hours": {k: _r(v) for k, v in hours.items()},
        "cost": {k: _r(v) for k, v in cost.items()},
        "cost_total": _r(sum(cost.values())),
        "spill_fraction": _r(spilled / owned) if owned else 0.0,
        "scale_events": sum(run.scale_events for run in runs.values()),
        "max_cost_rate": _r(max_cost_rate),
        "models": models,
        "series": series,
    }
