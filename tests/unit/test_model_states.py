"""The router's live model states: counters, Serve's replica counts, cooldowns."""

from __future__ import annotations

import pytest

from router._state import ModelStates
from tests._clock import Clock

pytestmark = pytest.mark.unit


def _states(clock: Clock) -> ModelStates:
    return ModelStates({"law": 2, "generalist": 4}, cooldown_s=5.0, clock=clock)


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


def test_only_a_model_never_seen_running_is_in_its_first_start() -> None:
    states = _states(Clock())
    states.observe({"generalist": 1}, starting={"law": 1})
    assert states.first_start("law") and not states.first_start("generalist")
    states.observe({"law": 1, "generalist": 1})
    states.observe({"generalist": 1}, starting={"law": 1})  # replaced, or up again from zero
    assert states.cold_start("law") and not states.first_start("law")
    fresh = _states(Clock())  # a router that never saw it, told by a replica's report
    fresh.observe({"generalist": 1}, starting={"law": 1})
    fresh.ran("law")
    assert not fresh.first_start("law")


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


def test_a_failure_cools_the_model_down_then_one_probe_tests_it() -> None:
    clock = Clock()
    states = _states(clock)
    states.observe({"law": 1, "generalist": 1})
    states.failed("law")
    law = states.snapshot()["law"]
    assert not law.healthy and law.cooling
    assert states.try_probe("law") is None  # no probe while the cooldown runs
    clock.now += 4.9
    assert not states.snapshot()["law"].healthy
    clock.now += 0.2  # the cooldown is over: one request may probe
    assert states.snapshot()["law"].healthy
    token = states.try_probe("law")
    assert token is not None  # the probe
    assert not states.snapshot()["law"].healthy  # the others keep away while it runs
    assert states.try_probe("law") is None  # a second request at once is no probe
    states.answered("law")
    law = states.snapshot()["law"]
    assert law.healthy and not law.cooling  # the probe's answer ended the cooldown


def test_a_missed_deadline_starts_a_cooldown_and_a_failed_probe_another() -> None:
    clock = Clock()
    states = _states(clock)
    states.observe({"law": 1, "generalist": 1})
    states.missed("law")
    assert states.open_now("law") and states.cooling("law")
    clock.now += 5.0
    assert not states.open_now("law") and not states.cooling("law")
    assert states.try_probe("law") is not None
    states.missed("law")  # the probe missed too: another cooldown
    assert states.open_now("law")
    clock.now += 5.0
    token = states.try_probe("law")
    assert token is not None
    states.release("law", token)  # the probe was cancelled: no verdict, the next one probes
    assert states.try_probe("law") is not None
    states.answered("law")
    assert not states.cooling("law")


def test_a_stale_probe_holds_the_others_back_for_a_cooldown_at_most() -> None:
    """A probe that runs long (a long answer) does not keep the model out for its length."""
    clock = Clock()
    states = _states(clock)
    states.observe({"law": 1, "generalist": 1})
    states.missed("law")
    clock.now += 5.0
    first = states.try_probe("law")
    assert first is not None and states.cooling("law")
    clock.now += 5.0  # still no verdict: the probe is stale
    assert not states.cooling("law")
    second = states.try_probe("law")
    assert second is not None and second != first
    states.release("law", first)  # the old probe's end does not clear the new one
    assert states.cooling("law")


def test_failures_are_counted_in_a_window() -> None:
    from router._cooldown import Cooldowns

    clock = Clock()
    cooldowns = Cooldowns(failures=3, window_s=10.0, cooldown_s=5.0, clock=clock)
    for _ in range(2):
        cooldowns.failed("law")
        clock.now += 6.0
    cooldowns.failed("law")  # the first fell out of the window: 2 of 3
    assert not cooldowns.cooling("law")
    cooldowns.failed("law")
    assert cooldowns.cooling("law")
    clock.now += 5.0
    cooldowns.answered("law")  # an answer after the cooldown closes it without a probe
    assert not cooldowns.cooling("law")
    with pytest.raises(ValueError, match="failures must be >= 1"):
        Cooldowns(failures=0, clock=clock)


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
    running, starting, down = counts_of(details)
    assert running == {"law": 0, "code": 0, "medicine": 1, "generalist": 0}
    assert starting == {"law": 0, "code": 2, "medicine": 0, "generalist": 1}
    assert down == frozenset()


def test_a_deployment_is_down_when_unhealthy_with_no_replica_running() -> None:
    from types import SimpleNamespace

    from router._health import counts_of

    unhealthy = SimpleNamespace(value="UNHEALTHY")  # as Serve's DeploymentStatus sends it
    details = {
        # A lost node: the replacement cannot be placed.
        "medicine": {"status": unhealthy, "target_num_replicas": 1, "replicas": []},
        # Unhealthy, but a replica still serves: not down.
        "code": {
            "status": "UNHEALTHY",
            "target_num_replicas": 2,
            "replicas": [{"state": "RUNNING"}, {"state": "STARTING"}],
        },
        # Scaling up from zero, or rolling out: the replica is on its way.
        "law": {"status": "UPSCALING", "target_num_replicas": 1, "replicas": []},
        "finance": {
            "status": "UPDATING",
            "target_num_replicas": 1,
            "replicas": [{"state": "STARTING"}],
        },
        "generalist": {"status": "DEPLOY_FAILED", "target_num_replicas": 1, "replicas": []},
        # Unhealthy at zero replicas wanted: its requests are its demand, let them wait.
        "tax": {"status": "UNHEALTHY", "target_num_replicas": 0, "replicas": []},
        # A crashed replica's replacement already placed on a node: it is loading.
        "math": {
            "status": "UNHEALTHY",
            "target_num_replicas": 1,
            "replicas": [{"state": "STARTING", "node_id": "abc"}],
        },
        # Its replacement not placed anywhere (its node is gone): down.
        "chem": {
            "status": "UNHEALTHY",
            "target_num_replicas": 1,
            "replicas": [{"state": "STARTING", "node_id": None}],
        },
    }
    assert counts_of(details).down == frozenset({"medicine", "generalist", "chem"})


def test_a_model_is_down_only_after_the_grace_in_a_row() -> None:
    clock = Clock()
    states = ModelStates({"law": 4, "generalist": 4}, clock=clock, down_grace_s=10)
    states.observe({"generalist": 1}, down=frozenset({"law"}))
    assert not states.down("law")
    clock.now += 9
    states.observe({"generalist": 1}, down=frozenset({"law"}))
    assert not states.down("law")
    clock.now += 1
    assert states.down("law")
    states.observe({"generalist": 1})  # its replacement got a node: the count starts again
    states.observe({"generalist": 1}, down=frozenset({"law"}))
    assert not states.down("law")


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


def test_a_failing_adapter_cools_down_alone() -> None:
    clock = Clock()
    states = _states(clock)
    states.observe({"law": 1, "generalist": 1})
    states.failed("law:tax")
    snapshot = states.snapshot({"law:tax": "law"})
    assert not snapshot["law:tax"].healthy and snapshot["law"].healthy
    clock.now += 5.0
    assert states.snapshot({"law:tax": "law"})["law:tax"].healthy


def test_the_other_routers_requests_count_against_capacity() -> None:
    states = _states(Clock())
    states.observe({"law": 1, "generalist": 1})  # law holds 2 at once
    states.begin("law")
    assert states.snapshot()["law"].has_capacity
    states.observe_others({"law": 1, "unknown": 5})
    law = states.snapshot()["law"]
    assert law.outstanding == 2 and not law.has_capacity  # full with the other router's
    assert states.outstanding("law") == 1 and states.all_outstanding()["law"] == 1


def test_routers_exchange_their_outstanding_requests_through_the_store() -> None:
    from cluster.store import MemoryStore
    from router._health import exchange_outstanding

    clock = Clock(1_000.0)
    store = MemoryStore(clock)
    assert exchange_outstanding("g", {"law": 2}, "router-a", store, ttl_s=5) == {}
    assert exchange_outstanding("g", {"law": 1, "code": 3}, "router-b", store, ttl_s=5) == {
        "law": 2
    }
    store.put("g:outstanding:garbled", "not json", ttl_s=5)
    assert exchange_outstanding("g", {"law": 0}, "router-a", store, ttl_s=5) == {
        "law": 1,
        "code": 3,
    }
    clock.now += 5.0  # router-b stopped reporting: its counts lapse
    assert exchange_outstanding("g", {}, "router-a", store, ttl_s=5) == {}


def test_a_cooldown_one_router_opens_opens_at_the_others_without_growing() -> None:
    from cluster.store import MemoryStore
    from router._health import exchange_cooldowns

    wall = Clock(1_700_000_000.0)
    mono_a, mono_b = Clock(50.0), Clock(9_000.0)  # processes' monotonic clocks differ
    a = ModelStates({"law": 2, "generalist": 2}, cooldown_s=5.0, clock=mono_a, wall=wall)
    b = ModelStates({"law": 2, "generalist": 2}, cooldown_s=5.0, clock=mono_b, wall=wall)
    store = MemoryStore(wall)
    a.missed("law")  # router a saw law stall
    assert exchange_cooldowns("g", a.cooldown_ends(), "a", store) == {}
    seen = exchange_cooldowns("g", b.cooldown_ends(), "b", store)
    assert seen == {"law": pytest.approx(wall.now + 5.0)}
    assert b.adopt_cooldowns(seen) == ["law"]
    assert b.cooling("law") and b.open_now("law")
    # Passed back and forth, the cooldown keeps its end.
    for _ in range(6):
        wall.now += 0.5
        mono_a.now += 0.5
        mono_b.now += 0.5
        assert a.adopt_cooldowns(exchange_cooldowns("g", a.cooldown_ends(), "a", store)) == []
        assert b.adopt_cooldowns(exchange_cooldowns("g", b.cooldown_ends(), "b", store)) == []
    for clock in (wall, mono_a, mono_b):
        clock.now += 2.01  # 5 s after the miss
    assert not a.open_now("law") and not b.open_now("law")
    # Each router then probes on its own: the first routed request at each.
    assert a.try_probe("law") is not None and b.try_probe("law") is not None
