"""The garden policy's new rules, each with a fake clock: work demand, growth, holding, overflow."""

from __future__ import annotations

from typing import Any

import pytest

from autoscaling._load import Capacity, Load, desired_replicas, work_replicas
from autoscaling._timing import Timing, forecast, hold_for, timed
from autoscaling.metrics import (
    PREFILL_TOKENS_WAITING_METRIC,
    PROMPT_TOKENS_PER_S_METRIC,
    REQUESTS_PER_S_METRIC,
    WorkMeter,
)
from autoscaling.policy import GardenPolicy
from autoscaling.profile import Profile
from autoscaling.simulate import Request, simulate, with_bounds
from autoscaling.simulate._tuned import best_point
from cluster.config import GardenConfig, SLOSpec, load_config
from tests._autoscaling import Ctx

pytestmark = pytest.mark.unit

PROFILE = Profile(
    max_batch=32,
    prefill_tokens_per_s=10_000,
    decode_tokens_per_s_at_batch={1: 50, 32: 20},
    cold_start_s=100,
)


def _capacity(**kw: Any) -> Capacity:
    return Capacity(
        target_ongoing_requests=4, profile=PROFILE, ttft_s=1.0, ttft_s_per_token=0.00025, **kw
    )


def test_one_long_prompt_weighs_like_many_short_ones() -> None:
    cap = _capacity()
    # The same 8 requests/s, once with 100-token prompts, once with 8,000-token ones.
    short = Load(running=2, prompt_tokens_per_s=800, requests_per_s=8, prefill_tokens_waiting=0)
    long = Load(running=2, prompt_tokens_per_s=64_000, requests_per_s=8, prefill_tokens_waiting=0)
    assert desired_replicas(short, cap, 1) < 1
    assert desired_replicas(long, cap, 1) > 6  # 64k tokens/s on a 10k tokens/s replica
    # The request count alone (2 running over 4 target_ongoing_requests) sees no difference.
    assert Load(running=2).demand / cap.target_ongoing_requests == 0.5


def test_waiting_prompt_tokens_add_the_replicas_that_clear_them_within_the_slo() -> None:
    cap = _capacity()
    idle = Load(running=0, prompt_tokens_per_s=0, requests_per_s=0, prefill_tokens_waiting=0)
    backlog = Load(
        running=0, prompt_tokens_per_s=0, requests_per_s=0, prefill_tokens_waiting=30_000
    )
    # 30,000 tokens at 10,000/s within the 1 s objective (+0.25 ms per token of a 1-token mean).
    assert work_replicas(backlog, cap, 1) == pytest.approx(3.0, rel=0.01)
    assert work_replicas(idle, cap, 1) == 0.0


def test_without_work_metrics_the_rule_is_rays_request_count() -> None:
    assert work_replicas(Load(running=8), _capacity(), 1) is None
    assert desired_replicas(Load(running=8, queued=4), _capacity(), 1) == 3.0


def test_the_meter_counts_arrivals_and_waiting_prompt_tokens() -> None:
    meter = WorkMeter(started_s=0.0)
    meter.arrived(1000)
    meter.arrived(3000)
    meter.prefilled(1000)
    stats = meter.stats(2.0, running_sequences=1, kv_usage=0.25)
    assert stats[PROMPT_TOKENS_PER_S_METRIC] == 2000.0
    assert stats[REQUESTS_PER_S_METRIC] == 1.0
    assert stats[PREFILL_TOKENS_WAITING_METRIC] == 3000.0
    # Rates restart from the last sample; the gauge does not.
    later = meter.stats(4.0, running_sequences=None, kv_usage=None)
    assert later[PROMPT_TOKENS_PER_S_METRIC] == 0.0
    assert later[PREFILL_TOKENS_WAITING_METRIC] == 3000.0


def test_forecast_extrapolates_the_trend_one_cold_start_ahead() -> None:
    assert forecast([[0, 1.0], [10, 2.0], [20, 3.0]], 100) == pytest.approx(13.0)
    assert forecast([[0, 3.0], [10, 2.0]], 100) == 0.0  # a falling trend bottoms out at zero
    assert forecast([[0, 1.0]], 100) is None


def test_rent_or_buy_holds_through_short_gaps_and_releases_before_long_ones() -> None:
    assert hold_for([], 500) == 500  # no history: the break-even time
    assert hold_for([60, 90, 120], 500) == 120  # demand came back within the cold cost
    assert hold_for([2000, 3000, 4000], 500) == 0  # it never came back in time: release
    # Mostly short gaps with one long one: holding through the short ones still pays.
    assert hold_for([30, 40, 50, 5000], 500) == 50


def _step(policy: Any, ctx: Ctx, t: float) -> int:
    ctx.current_time = t
    replicas, ctx.policy_state = policy(ctx)
    return int(replicas)


def test_growth_is_early_on_a_rising_trend() -> None:
    wishes = iter([0.2, 0.5, 0.8, 0.9])
    timing = Timing(cold_start_s=100, target_ongoing_requests=4)
    policy = timed(lambda ctx: (next(wishes), dict(ctx.policy_state)), timing)
    ctx = Ctx(target_num_replicas=1)
    # Grown at 0.8, before the wish passes 1, once its doubling would pass 1.
    assert [_step(policy, ctx, t) for t in (0, 10, 20)] == [1, 1, 2]


def test_a_step_up_from_nothing_asks_for_one_replica_not_two() -> None:
    """Scale from zero: the first spills are a step, not a trend to extrapolate."""
    wishes = iter([0.0, 0.0, 0.25, 0.25, 0.25])
    timing = Timing(cold_start_s=200, target_ongoing_requests=16)
    policy = timed(lambda ctx: (next(wishes), dict(ctx.policy_state)), timing)
    ctx = Ctx(target_num_replicas=0, current_num_replicas=0)
    decided = []
    for t in (0, 10, 20, 30, 40):
        decided.append(_step(policy, ctx, t))
        ctx.target_num_replicas = ctx.current_num_replicas = decided[-1]  # Serve follows
    assert decided == [0, 0, 1, 1, 1]


def test_a_fading_burst_goes_to_a_generalist_with_room() -> None:
    def run(room: bool) -> list[int]:
        wishes = iter([3.0, 2.5, 2.0])
        timing = Timing(
            cold_start_s=100, target_ongoing_requests=4, overflow_room=lambda ctx, excess: room
        )
        policy = timed(lambda ctx: (next(wishes), dict(ctx.policy_state)), timing)
        ctx = Ctx(target_num_replicas=1)
        return [_step(policy, ctx, t) for t in (0, 10, 20)]

    assert run(room=True)[-1] == 1  # a falling wish: over before a replica is ready
    assert run(room=False)[-1] == 2  # no room: grow for it as Ray would


def test_an_idle_replica_is_held_for_the_break_even_time() -> None:
    timing = Timing(
        cold_start_s=10, target_ongoing_requests=4, miss_penalty=4
    )  # a cold start costs 50 s of rent
    wishes = iter([3.0] + [1.0] * 10)
    policy = timed(lambda ctx: (next(wishes), dict(ctx.policy_state)), timing)
    ctx = Ctx(target_num_replicas=3, current_num_replicas=3)
    held = [_step(policy, ctx, t) for t in (0, 10, 20, 30, 40, 49, 51)]
    assert held == [3, 3, 3, 3, 3, 3, 1]


def test_the_garden_policy_reads_the_work_metrics_of_its_replicas() -> None:
    policy = GardenPolicy(
        target_ongoing_requests=4, min_replicas=1, max_replicas=8, profile=PROFILE
    )
    ctx = Ctx(
        total_running_requests=2,
        aggregated_metrics={
            PROMPT_TOKENS_PER_S_METRIC: {"a": 20_000.0, "b": 20_000.0},
            REQUESTS_PER_S_METRIC: {"a": 2.0, "b": 2.0},
            PREFILL_TOKENS_WAITING_METRIC: {"a": 0.0, "b": 0.0},
        },
        current_num_replicas=2,
        target_num_replicas=2,
    )
    assert _step(policy, ctx, 0) > 4  # 40k tokens/s against 10k/s replicas, 2 requests running


def test_the_sized_objective_adds_the_allowance_per_prompt_token() -> None:
    slo = SLOSpec(ttft_ms=1000, ttft_ms_per_1k_prompt_tokens=250)
    assert slo.ttft_ms_for(40_000) == 11_000
    assert SLOSpec(ttft_ms=1000, ttft_ms_per_1k_prompt_tokens=0).ttft_ms_for(40_000) == 1000


def test_every_policy_is_scored_under_both_rules_with_the_specialists_share() -> None:
    garden = with_bounds(load_config(None), 1, 2)
    trace = [Request(i * 0.5, 20_000 if i % 2 else 200, 10) for i in range(120)]
    for policy in ("garden", "ray-default"):
        report = simulate(trace, garden, policy=policy)  # type: ignore[arg-type]
        assert report["ttft_slo_attainment_sized"] >= report["ttft_slo_attainment"]
        assert 0 <= report["specialist_share"] <= 1
        assert "specialist_share" in report["models"]["law"]
        assert "specialist_share" not in report["models"]["generalist"]


def test_the_replays_policy_sizes_every_model_whatever_one_names_for_itself() -> None:
    data = load_config(None).model_dump(mode="json")
    data["models"][1]["autoscaling"]["policy"] = "ray-default"  # law
    garden = with_bounds(GardenConfig.model_validate(data), 1, 2)
    trace = [Request(i * 0.5, 200, 10) for i in range(60)]
    for policy in ("garden", "ray-default"):
        report = simulate(trace, garden, policy=policy)  # type: ignore[arg-type]
        assert report["policy"] == policy and report["models"]["law"]["requests"] > 0


def test_bounds_overrides_apply_to_every_chat_model_and_keep_the_generalist_at_one() -> None:
    garden = with_bounds(load_config(None), 0, 8)
    assert {m.autoscaling.max_replicas for m in garden.chat_models} == {8}
    # The simulator replays generation: the embedder is left as configured.
    assert [m.autoscaling.max_replicas for m in garden.embedders] == [2]
    assert garden.generalist.autoscaling.min_replicas == 1
    assert {m.autoscaling.min_replicas for m in garden.specialists} == {0}
    with pytest.raises(ValueError, match="above max_replicas"):
        with_bounds(load_config(None), 3, None)


def test_ray_tuned_takes_the_cheapest_point_that_reaches_the_reference() -> None:
    points = [
        {"ttft_slo_attainment_sized": 0.90, "cost_total": 1.0},
        {"ttft_slo_attainment_sized": 0.95, "cost_total": 3.0},
        {"ttft_slo_attainment_sized": 0.96, "cost_total": 2.0},
    ]
    assert best_point(points, 0.95) == 2
    assert best_point(points, 0.99) == 2  # none reaches it: the highest attainment
    assert best_point(points, 0.5) == 0


def test_the_replica_meters_prompts_from_arrival_to_first_output() -> None:
    import asyncio

    from deployments._probe import metered

    meter = WorkMeter(started_s=0.0)
    seen: list[float] = []

    async def generate(prompt: Any, *args: Any, **kwargs: Any) -> Any:
        seen.append(meter.stats(0.0, None, None)[PREFILL_TOKENS_WAITING_METRIC])
        for token in range(3):
            yield token

    async def main() -> None:
        wrapped = metered(generate, meter)
        outputs = [o async for o in wrapped({"prompt_token_ids": list(range(700))}, None, "r")]
        assert outputs == [0, 1, 2]

    asyncio.run(main())
    assert seen == [700.0]  # waiting while the engine had not answered
    assert meter.stats(1.0, None, None)[PREFILL_TOKENS_WAITING_METRIC] == 0.0


DAY = 86_400.0
NINE = 9 * 3600.0


def test_the_season_remembers_each_slots_peak_from_complete_days() -> None:
    from autoscaling._season import Season

    season, state = Season(), {}
    season.record(state, NINE + 60, 4.0)
    season.record(state, NINE + 120, 6.0)
    assert season.at(state, NINE + 300) is None  # today's visit is not complete yet
    assert season.at(state, DAY + NINE + 300) == 6.0  # tomorrow, the same slot
    season.record(state, DAY + NINE + 60, 2.0)  # a quieter day weighs half
    assert season.at(state, 2 * DAY + NINE) == pytest.approx(4.0)
    assert season.at(state, DAY + NINE + 3600) is None  # 10:00 was never seen
    with pytest.raises(ValueError, match="bins >= 1"):
        Season(bins=0)


def test_growth_comes_a_cold_start_before_a_ramp_seen_the_day_before() -> None:
    timing = Timing(cold_start_s=300, target_ongoing_requests=4)

    def ramp(t: float) -> float:  # one replica's load, and four from 09:00 to 09:30
        return 4.0 if NINE <= t % DAY < NINE + 1800 else 1.0

    def run(start: float, end: float, state: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        ctx = Ctx(target_num_replicas=1, current_num_replicas=1, policy_state=state)
        decided = 1
        policy = timed(lambda c: (ramp(c.current_time), dict(c.policy_state)), timing)
        for t in range(int(start), int(end), 10):
            decided = _step(policy, ctx, t)
        return decided, ctx.policy_state

    # Day one, 08:50 to 08:56: quiet, and nothing known about 09:00 yet.
    decided, state = run(NINE - 600, NINE - 240, {})
    assert decided == 1
    _, state = run(NINE - 240, NINE + 3600, state)
    # Day two, as quiet at 08:56: 09:00 is a cold start away, and needed four.
    decided, _ = run(DAY + NINE - 600, DAY + NINE - 240, state)
    assert decided == 2  # one replica ahead each period, towards four
