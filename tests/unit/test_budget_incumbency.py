"""Under a budget, held replicas are stable: no cut before the delay, no trading by value."""

from __future__ import annotations

import pytest

from autoscaling._ledger import Budget, Ledger
from autoscaling.budget import Claim, arbitrate
from autoscaling.policy import GardenPolicy
from autoscaling.profile import Profile
from tests._autoscaling import Ctx

pytestmark = pytest.mark.unit


def _claim(model: str, demand: float, held: int = 1, priority: int = 0) -> Claim:
    return Claim(model, 2, demand, 8.0, 1, 4, 1.0, priority=priority, held=held)


def test_a_held_replica_outranks_a_new_one_of_equal_priority() -> None:
    # b's second replica would serve more, but a already holds its second one.
    assert arbitrate([_claim("a", 9, held=2), _claim("b", 16)], max_cost_per_hour=3) == {
        "a": 2,
        "b": 1,
    }
    # Nobody holds one: value decides, as before.
    assert arbitrate([_claim("a", 9), _claim("b", 16)], max_cost_per_hour=3) == {"a": 1, "b": 2}
    # A higher priority still takes it.
    claims = [_claim("a", 9, held=2), _claim("b", 16, priority=1)]
    assert arbitrate(claims, max_cost_per_hour=3) == {"a": 1, "b": 2}


def test_a_budget_does_not_skip_the_downscale_delay() -> None:
    ledger = Ledger(Budget(max_cost_per_hour=10.0))  # roomy: it never binds here
    # A 12 s cold start at the default miss penalty (4) holds an idle replica 60 s.
    profile = Profile(
        max_batch=8, prefill_tokens_per_s=1e4, decode_tokens_per_s_at_batch={1: 50},
        cold_start_s=12,
    )  # fmt: skip
    policy = GardenPolicy(
        target_ongoing_requests=4, min_replicas=1, max_replicas=4, model="law", cost_per_hour=1.0,
        ledger=ledger, on_capped=lambda _: None, profile=profile,
    )  # fmt: skip
    ctx = Ctx(total_running_requests=12)
    target, ctx.policy_state = policy(ctx)
    assert target == 3
    ctx.target_num_replicas = ctx.current_num_replicas = 3
    ctx.total_running_requests = 0  # the burst is over: the wish drops to 1
    for t in (1.0, 30.0, 59.0):
        ctx.current_time = t
        target, ctx.policy_state = policy(ctx)
        assert target == 3, f"cut at t={t} before the 60 s downscale delay"
    ctx.current_time = 61.0
    target, ctx.policy_state = policy(ctx)
    assert target == 1


def test_the_live_ledger_counts_released_replicas_as_draining() -> None:
    """Growth may spend only what a cut has really freed: the ledger's own draining count."""
    from autoscaling._ledger import Budget, Ledger

    clock = [0.0]
    ledger = Ledger(Budget(max_cost_per_hour=4.0), drain_s=23.0, clock=lambda: clock[0])
    ledger.claim(Claim("a", 3, 24.0, 8.0, 1, 4, 1.0, held=3))
    ledger.claim(Claim("b", 1, 8.0, 8.0, 1, 4, 1.0, held=1))
    assert ledger.grants() == {"a": 3, "b": 1}
    # a drops to 1: its two replicas drain while b wishes for three.
    clock[0] = 10.0
    ledger.claim(Claim("a", 1, 4.0, 8.0, 1, 4, 1.0, held=1))
    ledger.claim(Claim("b", 3, 24.0, 8.0, 1, 4, 1.0, held=1))
    assert ledger.draining() == {"a": 2}
    assert ledger.grants()["b"] == 1  # 1 + 2 draining + b's 1 = 4: nothing is free yet
    clock[0] = 10.0 + 23.0  # past the longest Serve lets a released replica live
    assert ledger.draining() == {}
    assert ledger.grants()["b"] == 3
