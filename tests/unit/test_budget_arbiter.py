"""The budget arbiter: replicas go where they add the most SLO throughput per dollar."""

from __future__ import annotations

import pytest

from autoscaling.budget import Claim, arbitrate

pytestmark = pytest.mark.unit


def _claim(model: str, wish: int, demand: float, **kw: float) -> Claim:
    base = {
        "target_ongoing_requests": 8.0,
        "min_replicas": 1,
        "max_replicas": 4,
        "cost_per_hour": 1.0,
    }
    base.update(kw)
    return Claim(model, wish, demand, **base)  # type: ignore[arg-type]


def test_no_ceiling_grants_every_wish() -> None:
    claims = [_claim("law", 3, 24), _claim("code", 2, 16)]
    assert arbitrate(claims) == {"law": 3, "code": 2}


def test_cost_ceiling_prefers_cheaper_throughput() -> None:
    # Both want a second replica; only one fits. The cheap one adds the same
    # throughput for a quarter of the price.
    claims = [_claim("law", 2, 16, cost_per_hour=0.25), _claim("generalist", 2, 16)]
    assert arbitrate(claims, max_cost_per_hour=1.25 + 0.25) == {"law": 2, "generalist": 1}


def test_a_nearly_idle_replica_loses_to_a_busy_one() -> None:
    # law's 2nd replica would serve 1 request, code's 8.
    claims = [_claim("law", 2, 9), _claim("code", 2, 16)]
    assert arbitrate(claims, max_cost_per_hour=3) == {"law": 1, "code": 2}


def test_priority_comes_before_value() -> None:
    claims = [_claim("law", 2, 9, priority=1), _claim("code", 2, 16)]
    assert arbitrate(claims, max_cost_per_hour=3) == {"law": 2, "code": 1}


def test_gpu_ceiling_and_minimums() -> None:
    claims = [_claim("law", 4, 64, gpus=1), _claim("code", 1, 0, gpus=1)]
    granted = arbitrate(claims, max_gpus=3)
    assert granted == {"law": 2, "code": 1}


def test_the_budget_is_never_exceeded() -> None:
    claims = [_claim(f"m{i}", 4, 40, cost_per_hour=0.3 + i / 10) for i in range(5)]
    cap = 4.0
    granted = arbitrate(claims, max_cost_per_hour=cap)
    spent = sum(c.cost_per_hour * granted[c.model] for c in claims)
    assert spent <= cap
    assert all(granted[c.model] >= c.min_replicas for c in claims)
