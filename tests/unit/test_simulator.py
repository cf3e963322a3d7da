"""The simulator's replay: determinism, the budget, scaling on bursts, spills, baselines."""

from __future__ import annotations

import json
from typing import Any

import pytest

from autoscaling.simulate import ProfileSet, Request, simulate
from cluster.config import GardenConfig, load_config

pytestmark = pytest.mark.unit

PROFILE = {
    "max_batch": 8,
    "prefill_tokens_per_s": 10_000,  # a 1000-token prompt takes 0.1 s
    "decode_tokens_per_s_at_batch": {1: 50, 8: 40},
    "cold_start_s": 10,
}


def _garden(**specialist: Any) -> GardenConfig:
    """``code`` and the generalist only, with short delays so a replay of minutes scales."""
    data = load_config(None).model_dump(mode="json")
    data["models"] = [m for m in data["models"] if m["name"] in ("code", "generalist")]
    data["router"]["thresholds"] = {"code": data["router"]["thresholds"]["code"]}
    for m in data["models"]:
        m["autoscaling"].update(min_replicas=1, max_replicas=3)
        m["autoscaling"].pop("target_ongoing_requests", None)
    data["models"][0]["autoscaling"].update(specialist.pop("autoscaling", {}))
    data["models"][0].update(specialist)
    data["autoscaling"].update(
        upscale_delay_s=5, downscale_delay_s=30, look_back_period_s=10, metrics_interval_s=2
    )
    return GardenConfig.model_validate(data)


def _profiles() -> ProfileSet:
    return ProfileSet.model_validate({"defaults": PROFILE})


def _bursty(burst_rate: float = 20.0) -> list[Request]:
    """One request every 2 s for 10 minutes, with a 30-second burst at ``burst_rate`` at t=60."""
    times = [float(t) for t in range(0, 600, 2)]
    times += [60 + i / burst_rate for i in range(int(30 * burst_rate))]
    return [Request(t, 1000, 20) for t in sorted(times)]


def _replay(garden: GardenConfig, policy: str = "garden", **kw: Any) -> dict[str, Any]:
    return simulate(
        _bursty(), garden, _profiles(), policy=policy, mix={"code": 3, "general": 1}, **kw
    )


def test_same_seed_same_report() -> None:
    garden = _garden()
    first = json.dumps(_replay(garden, seed=3))
    assert first == json.dumps(_replay(garden, seed=3))
    assert first != json.dumps(_replay(garden, seed=4))


def test_a_burst_scales_the_specialist_up_and_later_down() -> None:
    report = _replay(_garden())
    target = report["series"]["models"]["code"]["target"]
    assert target[0] == 1
    assert max(target) > 1
    assert target[-1] == 1
    assert report["models"]["code"]["scale_events"] >= 2
    assert report["ttft_slo_attainment"] is not None


def test_the_budget_is_never_exceeded() -> None:
    garden = _garden()  # code 0.25/h, generalist 1.0/h: the floor costs 1.25/h
    report = _replay(garden, budget=1.75)
    assert report["budget"] == 1.75
    assert report["max_cost_rate"] <= 1.75
    assert max(report["series"]["cost_rate"]) <= 1.75
    unbounded = _replay(garden)
    assert unbounded["max_cost_rate"] > 1.75  # the budget did bind


def test_a_budget_below_the_floor_is_refused() -> None:
    with pytest.raises(ValueError, match="below the cost of every model's min_replicas"):
        _replay(_garden(), budget=1.0)


def test_spills_count_toward_the_specialists_demand() -> None:
    # One request per replica before the router spills: the burst overflows.
    garden = _garden(limits={"max_ongoing_requests": 1, "max_queued_requests": 8})
    report = _replay(garden)
    assert report["spill_fraction"] > 0
    # Its own requests never exceed max_replicas x 1; the rest of its demand is spilled.
    assert report["models"]["code"]["peak_demand"] > 3
    assert max(report["series"]["models"]["code"]["target"]) == 3


def test_static_peak_costs_at_least_the_garden_policy() -> None:
    garden = _garden()
    static = _replay(garden, policy="static-peak")
    dynamic = _replay(garden)
    assert static["scale_events"] == 0
    assert static["cost_total"] >= dynamic["cost_total"]
    assert static["ttft_slo_attainment"] >= dynamic["ttft_slo_attainment"] - 0.05


def test_ray_default_runs_rays_policy_with_its_own_delays() -> None:
    report = _replay(_garden(), policy="ray-default")
    # Ray's default downscale delay (600 s) outlasts the rest of this 10-minute trace.
    assert report["series"]["models"]["code"]["target"][-1] > 1
    assert report["requests"] == len(_bursty())


def test_a_specialist_scales_from_zero_on_spilled_demand_and_back() -> None:
    garden = _garden(autoscaling={"min_replicas": 0, "initial_replicas": 0})
    # 30 s of traffic, then quiet until one last request at t=300.
    trace = [Request(10 + i / 2, 1000, 20) for i in range(60)] + [Request(300.0, 1000, 20)]
    report = simulate(trace, garden, _profiles(), mix={"code": 1})
    target = report["series"]["models"]["code"]["target"]
    assert target[0] == 0
    assert max(target) >= 1  # its spilled requests woke it up
    # It went back to zero once its hold ran out (the last request wakes it again).
    assert 0 in target[target.index(max(target)) :]
    assert report["spill_fraction"] > 0  # served by the generalist while it had no replica
    assert report["models"]["code"]["requests"] > 0


def test_an_adapters_domain_is_replayed_on_its_base_model() -> None:
    """A domain an adapter owns is in the default mix and loads its base model's replicas."""
    garden = _garden(
        lora={
            "dynamic_lora_loading_path": "s3://adapters/code",
            "adapters": [
                {"name": "sql", "domains": ["databases"], "exemplars": ["Write a SQL join."]}
            ],
        }
    )
    assert garden.domain_owners()["databases"] == "code:sql"
    report = simulate(_bursty(), garden, _profiles(), policy="garden", mix={"databases": 1})
    assert report["models"]["code"]["requests"] > 0
    assert report["specialist_share"] > 0.5  # the base served them, but for burst spills
    mixed = simulate(_bursty(), garden, _profiles(), policy="garden")
    assert mixed["models"]["code"]["requests"] > report["models"]["code"]["requests"] / 4
