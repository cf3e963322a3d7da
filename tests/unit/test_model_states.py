"""The router's live model states: counters, Serve's replica counts, suspicion."""

from __future__ import annotations

import pytest

from router._state import ModelStates
from tests._clock import Clock

pytestmark = pytest.mark.unit


def _states(clock: Clock) -> ModelStates:
    return ModelStates({"law": 2, "generalist": 4}, suspect_s=5.0, clock=clock)


def test_unknown_until_observed_then_capacity_follows_replicas() -> None:
    states = _states(Clock())
    assert not states.snapshot()["law"].healthy
    states.observe({"law": 2, "generalist": 1})
    law = states.snapshot()["law"]
    assert law.healthy and law.queue_limit == 4 and law.outstanding == 0
    states.observe({"generalist": 1})  # law has no running replica any more
    assert not states.snapshot()["law"].healthy


def test_starting_replicas_are_reported_beside_running_ones() -> None:
    states = _states(Clock())
    states.observe({"generalist": 1}, starting={"law": 1})
    law = states.snapshot()["law"]
    assert (law.healthy, law.running, law.starting, law.cold_start) == (False, 0, 1, True)
    states.observe({"law": 1, "generalist": 1})  # it runs; none starts any more
    law = states.snapshot()["law"]
    assert (law.healthy, law.running, law.starting, law.cold_start) == (True, 1, 0, False)


def test_outstanding_requests_fill_the_queue() -> None:
    states = _states(Clock())
    states.observe({"law": 1, "generalist": 1})
    states.begin("law")
    assert states.snapshot()["law"].has_capacity
    states.begin("law")
    assert not states.snapshot()["law"].has_capacity
    states.end("law")
    states.end("law")
    states.end("law")  # an extra end never goes negative
    assert states.outstanding("law") == 0


def test_a_failure_makes_the_model_suspect_for_a_while() -> None:
    clock = Clock()
    states = _states(clock)
    states.observe({"law": 1, "generalist": 1})
    states.failed("law")
    assert not states.snapshot()["law"].healthy
    clock.now += 4.9
    assert not states.snapshot()["law"].healthy
    clock.now += 0.2
    assert states.snapshot()["law"].healthy


def test_budget_capped_models_are_flagged() -> None:
    states = _states(Clock())
    states.observe({"law": 1, "generalist": 1}, budget_capped=frozenset({"law"}))
    assert states.snapshot()["law"].budget_capped
    assert not states.snapshot()["generalist"].budget_capped


def test_spilled_requests_count_for_the_model_they_were_meant_for() -> None:
    states = _states(Clock())
    states.begin("generalist", spilled_from="law")
    states.begin("generalist")
    assert states.spilled() == {"law": 1, "generalist": 0}
    assert states.outstanding("generalist") == 2
    states.end("generalist", spilled_from="law")
    assert states.spilled()["law"] == 0


def test_target_limit_follows_running_replicas() -> None:
    states = ModelStates({"law": 8, "generalist": 8}, targets={"law": 1.5}, clock=Clock())
    states.observe({"law": 3, "generalist": 1})
    snapshot = states.snapshot()
    assert snapshot["law"].target_limit == 4  # 3 replicas x 1.5, rounded down
    assert snapshot["generalist"].target_limit is None  # no target given: unknown


def test_serve_details_give_running_and_starting_replicas() -> None:
    from types import SimpleNamespace

    from router._health import counts_of

    starting_member = SimpleNamespace(value="STARTING")  # as Serve's ReplicaState sends it

    details = {
        "law": {"target_num_replicas": 0, "replicas": []},
        "code": {  # scaling 0 -> 2: one listed as starting, one not listed yet
            "target_num_replicas": 2,
            "replicas": [{"state": starting_member}],
        },
        "medicine": {
            "target_num_replicas": 1,
            "replicas": [{"state": "RUNNING"}, {"state": "STOPPING"}],
        },
        "generalist": {"target_num_replicas": 1, "replicas": [{"state": "RECOVERING"}]},
    }
    running, starting = counts_of(details)
    assert running == {"law": 0, "code": 0, "medicine": 1, "generalist": 0}
    assert starting == {"law": 0, "code": 2, "medicine": 0, "generalist": 1}


def test_an_adapter_shares_its_base_models_state() -> None:
    from router.policy import Features, PolicyConfig, Reason, decide

    states = _states(Clock())
    states.observe({"law": 1, "generalist": 1})
    for _ in range(2):
        states.begin("law")  # law's one replica takes 2: full
    snapshot = states.snapshot({"law:tax": "law"})
    assert snapshot["law:tax"] == snapshot["law"] and not snapshot["law:tax"].has_capacity
    policy = PolicyConfig(generalist="generalist", owners={"tax": "law:tax"})
    d = decide(Features("tax", 0.99), snapshot, policy)
    assert (d.model, d.reason, d.fallback_from) == ("generalist", Reason.OVERLOADED, "law:tax")


def test_a_failing_adapter_is_suspect_alone() -> None:
    clock = Clock()
    states = _states(clock)
    states.observe({"law": 1, "generalist": 1})
    states.failed("law:tax")
    snapshot = states.snapshot({"law:tax": "law"})
    assert not snapshot["law:tax"].healthy and snapshot["law"].healthy
    clock.now += 5.0
    assert states.snapshot({"law:tax": "law"})["law:tax"].healthy
