"""The static budget partition a Ray user would set, and work-valued budget grants."""

from __future__ import annotations

import pytest

from autoscaling.budget import Claim, arbitrate
from autoscaling.simulate._partition import partition

pytestmark = pytest.mark.unit

COST = {"a": 1.0, "b": 1.0, "g": 2.0}
MINS = {"a": 1, "b": 0, "g": 1}


def test_shares_follow_peak_needs_and_fill_the_budget() -> None:
    maxes = partition({"a": 6, "b": 2, "g": 4}, COST, MINS, budget=8.0)
    # Needs cost 6 + 2 + 8 = 16: half of each, then the leftover to the largest shortfall.
    assert maxes == {"a": 3, "b": 1, "g": 2}
    assert sum(COST[m] * n for m, n in maxes.items()) == 8.0


def test_every_model_keeps_at_least_one_replica_and_its_minimum() -> None:
    maxes = partition({"a": 40, "b": 0, "g": 1}, COST, {"a": 1, "b": 0, "g": 1}, budget=5.0)
    assert maxes["b"] == 1 and maxes["g"] >= 1
    assert sum(COST[m] * n for m, n in maxes.items()) <= 5.0


def test_shares_stay_within_each_models_bound_and_a_free_model_ends() -> None:
    bounds = {"a": 2, "b": 8, "g": 8}
    maxes = partition({"a": 6, "b": 2, "g": 4}, COST, MINS, budget=100.0, max_replicas=bounds)
    assert maxes == {"a": 2, "b": 8, "g": 8}  # more budget than the bounds can spend
    free = partition({"a": 1, "b": 1, "g": 1}, {"a": 0.0, "b": 0.0, "g": 0.0}, MINS, 1.0, bounds)
    assert free == bounds


def test_a_budget_below_the_floors_is_refused_with_both_figures() -> None:
    with pytest.raises(ValueError, match=r"budget 3/h is below .* \(4/h\)"):
        partition({"a": 1, "b": 1, "g": 1}, COST, MINS, budget=3.0)


def test_grants_value_a_replica_by_the_work_it_serves_not_the_request_count() -> None:
    # "long" has 2 requests of long prompts that need 3 replicas of prefill;
    # "short" has 6 short requests that need 2. One replica of budget is left.
    long = Claim("long", 3, 2.0, 4.0, 1, 4, 1.0, held=1, need=3.0)
    short = Claim("short", 2, 6.0, 4.0, 1, 4, 1.0, held=1, need=1.5)
    assert arbitrate([long, short], max_cost_per_hour=3.0) == {"long": 2, "short": 1}
    # Counted in requests, the long-prompt model's second replica looked idle.
    counted = Claim("long", 3, 2.0, 4.0, 1, 4, 1.0, held=1)
    assert arbitrate([counted, short], max_cost_per_hour=3.0)["long"] == 1


def test_the_cli_offers_every_simulator_policy() -> None:
    from autoscaling.simulate import POLICIES
    from cluster.cli._simulate import _POLICIES

    assert tuple(_POLICIES) == tuple(POLICIES)
