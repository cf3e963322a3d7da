"""The garden autoscaling policy: the load rule, its wrappers, and Ray's context."""

from __future__ import annotations

from typing import Any

import pytest

from autoscaling._load import Capacity, Load, desired_replicas
from autoscaling._wrappers import bounded, budget_clamped
from autoscaling.metrics import KV_USAGE_METRIC
from autoscaling.policy import GardenPolicy, load_of
from tests._autoscaling import Ctx

pytestmark = pytest.mark.unit


def test_demand_counts_running_queued_and_spilled() -> None:
    cap = Capacity(target_ongoing_requests=8)
    assert desired_replicas(Load(running=8), cap, 1) == 1
    assert desired_replicas(Load(running=8, queued=4, spilled=4), cap, 1) == 2
    assert desired_replicas(Load(running=0), cap, 1) == 0


def test_kv_cache_pressure_scales_even_with_few_requests() -> None:
    cap = Capacity(target_ongoing_requests=32, kv_target=0.8)
    assert desired_replicas(Load(running=4, kv_usage=0.96), cap, 2) == pytest.approx(2.4)
    # A replica-less model has no cache to read: only requests count.
    assert desired_replicas(Load(running=4, kv_usage=0.96), cap, 0) == pytest.approx(0.125)


@pytest.mark.parametrize(
    "bad", [{"target_ongoing_requests": 0}, {"target_ongoing_requests": 4, "kv_target": 1.5}]
)
def test_capacity_is_validated(bad: dict[str, float]) -> None:
    with pytest.raises(ValueError, match="must be"):
        Capacity(**bad)


def _wish(value: float) -> Any:
    return lambda ctx: (value, dict(ctx.policy_state))


@pytest.mark.parametrize(("wish", "replicas"), [(0.2, 1), (1.0, 1), (1.01, 2), (9.0, 4)])
def test_bounds_round_up_and_clamp(wish: float, replicas: int) -> None:
    assert bounded(_wish(wish), 1, 4)(Ctx())[0] == replicas


def test_bounds_allow_zero_for_scale_to_zero() -> None:
    assert bounded(_wish(0.0), 0, 2)(Ctx())[0] == 0


def _run(policy: Any, ctx: Ctx, t: float) -> float:
    ctx.current_time = t
    replicas, ctx.policy_state = policy(ctx)
    return float(replicas)


def test_budget_clamp_cuts_at_once() -> None:
    policy = budget_clamped(_wish(4.0), lambda ctx: 2)
    ctx = Ctx(target_num_replicas=3)
    assert _run(policy, ctx, 0) == 2
    assert budget_clamped(_wish(4.0), lambda ctx: None)(ctx)[0] == 4


def test_load_reads_ray_custom_metrics() -> None:
    ctx = Ctx(
        total_running_requests=6,
        total_queued_requests=2,
        aggregated_metrics={KV_USAGE_METRIC: {"a": 0.5, "b": 0.7}},
    )
    assert load_of(ctx, 3.0) == Load(running=6, queued=2, spilled=3, kv_usage=pytest.approx(0.6))


def test_garden_policy_without_a_profile_acts_at_once() -> None:
    # No profile: no cold start to wait out, nothing to hold for.
    policy = GardenPolicy(target_ongoing_requests=4, min_replicas=1, max_replicas=3)
    ctx = Ctx(total_running_requests=10, target_num_replicas=1)
    assert _run(policy, ctx, 0) == 3
    ctx.target_num_replicas = ctx.current_num_replicas = 3
    ctx.total_running_requests = 1
    assert _run(policy, ctx, 10) == 1


def test_garden_policy_accepts_rays_own_context() -> None:
    from ray.serve._private.common import DeploymentID
    from ray.serve.config import AutoscalingConfig, AutoscalingContext

    ctx = AutoscalingContext(
        deployment_id=DeploymentID(name="law", app_name="garden"),
        deployment_name="law",
        app_name="garden",
        current_num_replicas=1,
        target_num_replicas=1,
        running_replicas=[],
        total_num_requests=20.0,
        total_queued_requests=4.0,
        aggregated_metrics={},
        raw_metrics={},
        capacity_adjusted_min_replicas=1,
        capacity_adjusted_max_replicas=4,
        policy_state={},
        last_scale_up_time=None,
        last_scale_down_time=None,
        current_time=100.0,
        config=AutoscalingConfig(min_replicas=1, max_replicas=4),
    )
    policy = GardenPolicy(target_ongoing_requests=8, min_replicas=1, max_replicas=4)
    replicas, state = policy(ctx)
    assert replicas == 3  # 20 requests over 8 target_ongoing_requests
    assert isinstance(state, dict)


def test_policies_sharing_a_ledger_stay_inside_the_budget() -> None:
    from autoscaling._ledger import Budget, Ledger

    ledger = Ledger(Budget(max_cost_per_hour=2.5))
    heard: list[frozenset[str]] = []

    def policy(model: str, cost: float) -> GardenPolicy:
        return GardenPolicy(
            target_ongoing_requests=4, min_replicas=1, max_replicas=4, model=model,
            cost_per_hour=cost, ledger=ledger, on_capped=heard.append,
        )  # fmt: skip

    law, generalist = policy("law", 0.5), policy("generalist", 1.0)
    busy, idle = Ctx(total_running_requests=16), Ctx(total_running_requests=1)
    assert _run(generalist, idle, 0) == 1
    # law wants 4 (16 requests / 4 target_ongoing_requests); 1.0 + 4 x 0.5 = 3.0 > 2.5: it gets 3.
    assert _run(law, busy, 0) == 3
    assert heard[-1] == frozenset({"law"})
    spent = 1.0 * 1 + 0.5 * 3
    assert spent <= 2.5


def test_spilled_requests_are_the_specialists_demand() -> None:
    spills = {"law": 12.0}
    policy = GardenPolicy(
        target_ongoing_requests=4, min_replicas=0, max_replicas=4, model="law",
        spilled=lambda model: spills.get(model, 0.0),
    )  # fmt: skip
    # Scaled to zero, nothing reaches law; its spilled demand still asks for 3.
    ctx = Ctx(current_num_replicas=0, target_num_replicas=0)
    assert _run(policy, ctx, 0) == 3
    spills.clear()
    assert _run(policy, Ctx(current_num_replicas=3, target_num_replicas=3), 1) == 0


def test_spill_reader_reads_at_most_once_per_ttl() -> None:
    from autoscaling.signals import SpillReader

    reads: list[str] = []
    now = [0.0]

    def read(app: str) -> dict[str, float]:
        reads.append(app)
        return {"law": 2.0}

    reader = SpillReader("garden", ttl_s=1.0, read=read, clock=lambda: now[0])
    assert reader("law") == 2.0 and reader("code") == 0.0
    now[0] = 0.9
    reader("law")
    now[0] = 1.0
    reader("law")
    assert reads == ["garden", "garden"]
