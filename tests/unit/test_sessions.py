"""Sticky conversations: the pure session rules, and the shared store they live in."""

from __future__ import annotations

import asyncio
from dataclasses import replace

import pytest

from cluster.store import MemoryStore
from router._sessions import SESSION_HEADER, Sessions, session_key
from router.policy import (
    Capabilities,
    Features,
    ModelState,
    Needs,
    PolicyConfig,
    Reason,
    Session,
    decide,
    session_after,
)
from tests._clock import Clock

pytestmark = pytest.mark.unit

POLICY = PolicyConfig(
    generalist="generalist", owners={"medicine": "medicine", "law": "law"}, default_threshold=0.6
)
READY = {
    name: ModelState(healthy=True, outstanding=0, queue_limit=4, running=1)
    for name in ("medicine", "law", "generalist")
}
LAW = Features("law", 0.97, {"law": 0.97, "medicine": 0.02, "general": 0.01})
MEDICINE = Session("medicine", Reason.SPECIALIST)


def test_a_healthy_specialist_keeps_its_conversation_whatever_the_classifier_says() -> None:
    d = decide(LAW, READY, POLICY, session=MEDICINE)
    assert (d.model, d.domain, d.reason) == ("medicine", "medicine", Reason.SESSION)
    assert d.confidence == 0.02  # the classifier's score of the session's domain
    assert session_after(d, POLICY, MEDICINE) == MEDICINE  # the original reason stays


def test_a_conversation_on_the_generalist_is_decided_afresh_each_turn() -> None:
    vague = decide(Features("general", 0.9), READY, POLICY)
    assert session_after(vague, POLICY, None) is None  # "hi" pins nothing
    unsure = decide(Features("law", 0.4), READY, POLICY)
    assert unsure.reason is Reason.LOW_CONFIDENCE
    assert session_after(unsure, POLICY, None) is None
    # An old session of the general domain is decided afresh too.
    d = decide(LAW, READY, POLICY, session=Session("general", Reason.LOW_CONFIDENCE))
    assert (d.model, d.reason) == ("law", Reason.SPECIALIST)


def test_the_session_keeps_the_decided_domain_of_a_multi_domain_specialist() -> None:
    policy = replace(POLICY, owners={**POLICY.owners, "contracts": "law"})
    d = decide(LAW, READY, policy)
    assert session_after(d, policy, None) == Session("law", Reason.SPECIALIST)


@pytest.mark.parametrize(
    ("state", "reason"),
    [
        (ModelState(healthy=False, running=0), Reason.UNHEALTHY),
        (ModelState(healthy=False, running=0, starting=1), Reason.COLD_START),
        (ModelState(healthy=True, outstanding=4, queue_limit=4, running=1), Reason.OVERLOADED),
        (
            ModelState(
                healthy=True, outstanding=2, queue_limit=4, budget_capped=True, target_limit=2
            ),
            Reason.BUDGET_CAPPED,
        ),
    ],
)
def test_stickiness_never_overrides_a_spill_and_a_cover_turn_is_not_kept(
    state: ModelState, reason: Reason
) -> None:
    states = {**READY, "medicine": state}
    cover = decide(LAW, states, POLICY, session=MEDICINE)
    assert (cover.model, cover.reason, cover.fallback_from) == ("generalist", reason, "medicine")
    kept = session_after(cover, POLICY, MEDICINE)
    assert kept == MEDICINE
    # Recovered: the next turn is back on its specialist.
    assert decide(LAW, READY, POLICY, session=kept).model == "medicine"


def test_a_missing_feature_is_served_elsewhere_without_moving_the_conversation() -> None:
    caps = {
        "medicine": Capabilities(),
        "law": Capabilities(),
        "generalist": Capabilities(tools=True),
    }
    policy = replace(POLICY, capabilities=caps)
    d = decide(LAW, READY, policy, Needs(tools=True), session=MEDICINE)
    assert (d.model, d.reason) == ("generalist", Reason.UNSUPPORTED)
    assert session_after(d, policy, MEDICINE) == MEDICINE


def test_the_first_turn_its_specialist_serves_starts_the_session() -> None:
    first = decide(LAW, READY, POLICY)
    assert session_after(first, POLICY, None) == Session("law", Reason.SPECIALIST)
    # A first turn served as cover starts nothing: the next one is decided afresh.
    down = {**READY, "law": ModelState(healthy=False, running=0)}
    assert session_after(decide(LAW, down, POLICY), POLICY, None) is None


def test_a_session_of_a_domain_the_garden_no_longer_has_is_decided_afresh() -> None:
    d = decide(LAW, READY, POLICY, session=Session("finance", Reason.SPECIALIST))
    assert (d.model, d.reason) == ("law", Reason.SPECIALIST)


def test_session_keys_come_from_the_header_else_the_user_field() -> None:
    body = {"user": "alice"}
    by_header = session_key({SESSION_HEADER: "conv-1"}, body)
    by_user = session_key({}, body)
    assert by_header and by_user and by_header != by_user
    assert session_key({SESSION_HEADER: "conv-1"}, {}) == by_header
    assert "alice" not in by_user and len(by_user) == 32
    assert session_key({}, {}) is None
    assert session_key({}, {"user": ""}) is None


def test_session_keys_are_scoped_by_the_api_key() -> None:
    """Two tenants picking the same id get two sessions; one tenant's turns share one."""
    alice = {"authorization": "Bearer key-a", SESSION_HEADER: "conv-1"}
    bob = {"authorization": "Bearer key-b", SESSION_HEADER: "conv-1"}
    assert session_key(alice, {}) != session_key(bob, {})
    assert session_key(alice, {}) == session_key(dict(alice), {"user": "x"})
    assert session_key({"authorization": "Bearer key-a"}, {"user": "u"}) != session_key(
        {"authorization": "Bearer key-b"}, {"user": "u"}
    )


def test_sessions_are_shared_through_the_store_and_expire() -> None:
    clock = Clock(1000.0)
    store = MemoryStore(clock=clock)
    one = Sessions(store, "garden", ttl_s=60, clock=clock)
    other = Sessions(store, "garden", ttl_s=60, clock=clock)

    async def scenario() -> None:
        one.remember("k", MEDICINE)
        await one.save("k", MEDICINE)
        assert await other.get("k") == (MEDICINE, True)  # another router replica sees it
        clock.now += 59
        other.remember("k", MEDICINE)
        await other.save("k", MEDICINE)  # a turn renews it
        clock.now += 59
        assert await one.get("k") == (MEDICINE, True)
        clock.now += 61
        assert await one.get("k") == (None, True)
        assert await Sessions(store, "other-garden", 60, clock=clock).get("k") == (None, True)

    asyncio.run(scenario())


def test_a_replica_sees_its_own_write_before_the_store_does() -> None:
    class Slow(MemoryStore):
        def put(self, key: str, value: str, ttl_s: float | None = None) -> None:
            raise AssertionError("not written yet")

    sessions = Sessions(Slow(), "garden", ttl_s=60)
    sessions.remember("k", MEDICINE)
    assert asyncio.run(sessions.get("k")) == (MEDICINE, True)


def test_an_unreadable_session_is_decided_afresh_and_flagged_so_it_is_not_overwritten() -> None:
    store = MemoryStore()
    store.put("garden:session:k", "{not json")
    assert asyncio.run(Sessions(store, "garden", 60).get("k")) == (None, False)
