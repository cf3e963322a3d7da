"""The pure dispatch policy: every reason, every boundary, no cluster."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest

from router.policy import (
    Decision,
    Features,
    ModelState,
    PolicyConfig,
    Reason,
    decide,
    fall_back,
)

pytestmark = pytest.mark.unit

CONFIG = PolicyConfig(
    generalist="generalist",
    owners={"medicine": "medicine", "law": "law", "finance": "finance", "code": "code"},
    default_threshold=0.6,
    thresholds={"law": 0.8},
)
READY = {
    name: ModelState(healthy=True, outstanding=0, queue_limit=4)
    for name in ("medicine", "law", "finance", "code", "generalist")
}


def _with(name: str, **changes: Any) -> dict[str, ModelState]:
    return {**READY, name: replace(READY[name], **changes)}


def test_confident_domain_goes_to_its_specialist() -> None:
    d = decide(Features("medicine", 0.9), READY, CONFIG)
    assert d == Decision("medicine", "medicine", 0.9, Reason.SPECIALIST)


def test_general_domain_goes_to_the_generalist() -> None:
    d = decide(Features("general", 0.99), READY, CONFIG)
    assert (d.model, d.reason, d.fallback_from) == ("generalist", Reason.GENERAL, None)


def test_unowned_domain_is_general() -> None:
    assert decide(Features("astrology", 0.99), READY, CONFIG).reason is Reason.GENERAL


@pytest.mark.parametrize(
    ("domain", "confidence", "reason"),
    [
        ("medicine", 0.59, Reason.LOW_CONFIDENCE),
        ("medicine", 0.60, Reason.SPECIALIST),  # at the threshold is enough
        ("law", 0.79, Reason.LOW_CONFIDENCE),  # law's own, stricter threshold
        ("law", 0.80, Reason.SPECIALIST),
    ],
)
def test_per_domain_thresholds(domain: str, confidence: float, reason: Reason) -> None:
    d = decide(Features(domain, confidence), READY, CONFIG)
    assert d.reason is reason
    assert d.fallback_from is None


def test_unhealthy_specialist_spills() -> None:
    d = decide(Features("code", 0.95), _with("code", healthy=False), CONFIG)
    assert (d.model, d.reason, d.fallback_from) == ("generalist", Reason.UNHEALTHY, "code")


def test_specialist_with_no_running_replica_but_one_starting_is_a_cold_start() -> None:
    states = _with("code", healthy=False, running=0, starting=1)
    d = decide(Features("code", 0.95), states, CONFIG)
    assert (d.model, d.reason, d.fallback_from) == ("generalist", Reason.COLD_START, "code")


@pytest.mark.parametrize(
    ("running", "starting"),
    [(0, 0), (1, 1), (None, 1)],  # none starting; a scale-up beside a suspect one; unknown
)
def test_cold_start_needs_no_running_replica_and_one_starting(
    running: int | None, starting: int
) -> None:
    states = _with("code", healthy=False, running=running, starting=starting)
    assert decide(Features("code", 0.95), states, CONFIG).reason is Reason.UNHEALTHY


def test_missing_state_counts_as_unhealthy() -> None:
    states = {k: v for k, v in READY.items() if k != "code"}
    assert decide(Features("code", 0.95), states, CONFIG).reason is Reason.UNHEALTHY


def test_budget_capped_specialist_spills() -> None:
    states = _with("finance", budget_capped=True, target_limit=0)
    d = decide(Features("finance", 0.9), states, CONFIG)
    assert (d.model, d.reason, d.fallback_from) == ("generalist", Reason.BUDGET_CAPPED, "finance")


def test_capped_overflow_stays_when_the_generalist_is_past_its_own_target() -> None:
    states = {
        **_with("finance", budget_capped=True, target_limit=1, outstanding=2),
        "generalist": ModelState(healthy=True, outstanding=3, queue_limit=8, target_limit=3),
    }
    assert decide(Features("finance", 0.9), states, CONFIG).reason is Reason.SPECIALIST
    states["finance"] = replace(states["finance"], outstanding=4)  # and now its queue is full
    assert decide(Features("finance", 0.9), states, CONFIG).reason is Reason.OVERLOADED


@pytest.mark.parametrize(("queued", "reason"), [(1, Reason.SPECIALIST), (2, Reason.BUDGET_CAPPED)])
def test_budget_capped_specialist_spills_only_its_overflow(queued: int, reason: Reason) -> None:
    # Capped means "no more replicas": the ones it has still serve up to their target.
    states = _with("finance", budget_capped=True, target_limit=2, outstanding=queued)
    d = decide(Features("finance", 0.9), states, CONFIG)
    assert (d.reason, d.model) == (
        reason,
        "finance" if reason is Reason.SPECIALIST else "generalist",
    )


@pytest.mark.parametrize(("queued", "reason"), [(3, Reason.SPECIALIST), (4, Reason.OVERLOADED)])
def test_full_queue_spills(queued: int, reason: Reason) -> None:
    d = decide(Features("law", 0.9), _with("law", outstanding=queued), CONFIG)
    assert d.reason is reason


def test_health_is_checked_before_budget_and_load() -> None:
    states = _with("law", healthy=False, budget_capped=True, outstanding=10)
    assert decide(Features("law", 0.9), states, CONFIG).reason is Reason.UNHEALTHY
    states = _with("law", budget_capped=True, outstanding=10)
    assert decide(Features("law", 0.9), states, CONFIG).reason is Reason.BUDGET_CAPPED


def test_never_spill_policy_keeps_the_specialist() -> None:
    strict = PolicyConfig(CONFIG.generalist, CONFIG.owners, 0.6, spill=False)
    states = _with("law", healthy=False, budget_capped=True, outstanding=10)
    assert decide(Features("law", 0.9), states, strict).model == "law"
    # Low confidence is a classification outcome, not a fallback: still general.
    assert decide(Features("law", 0.2), states, strict).reason is Reason.LOW_CONFIDENCE


@pytest.mark.parametrize(
    "reason",
    [Reason.SPECIALIST_ERROR, Reason.FIRST_TOKEN_DEADLINE, Reason.OVERLOADED, Reason.UNHEALTHY],
)
def test_dispatch_time_fallbacks(reason: Reason) -> None:
    first = decide(Features("medicine", 0.9), READY, CONFIG)
    d = fall_back(first, reason, CONFIG)
    assert (d.model, d.reason, d.fallback_from) == ("generalist", reason, "medicine")
    assert (d.domain, d.confidence) == ("medicine", 0.9)


def test_fall_back_rejects_up_front_reasons_and_the_generalist() -> None:
    first = decide(Features("medicine", 0.9), READY, CONFIG)
    with pytest.raises(ValueError, match="decided up front"):
        fall_back(first, Reason.BUDGET_CAPPED, CONFIG)
    general = decide(Features("general", 0.9), READY, CONFIG)
    with pytest.raises(ValueError, match="nothing to fall back to"):
        fall_back(general, Reason.SPECIALIST_ERROR, CONFIG)


def test_confidence_outside_unit_interval_is_rejected() -> None:
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        Features("law", 1.2)
