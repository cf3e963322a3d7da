"""The dispatch policy: which model answers, as a pure function.

``decide(features, model_states, config) -> Decision`` has no I/O and no
clock. Given what the classifier said about a request and what the router
knows about each model right now, it picks the top domain's specialist when
that is safe, and the generalist otherwise, with a reason for each answer.
Fallbacks found out only after dispatch (``specialist_error``,
``first_token_deadline``, and ``overloaded`` when the model itself refuses)
are made with :func:`fall_back`, not by ``decide``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from enum import StrEnum

__all__ = [
    "GENERAL_DOMAIN",
    "Decision",
    "Features",
    "ModelState",
    "PolicyConfig",
    "Reason",
    "decide",
    "fall_back",
]

#: The label of requests that belong to no specialist.
GENERAL_DOMAIN = "general"


class Reason(StrEnum):
    """Why a request went where it went (the ``x-garden-reason`` header)."""

    SPECIALIST = "specialist"
    GENERAL = "general"
    LOW_CONFIDENCE = "low_confidence"
    OVERLOADED = "overloaded"
    UNHEALTHY = "unhealthy"
    COLD_START = "cold_start"
    BUDGET_CAPPED = "budget_capped"
    SPECIALIST_ERROR = "specialist_error"
    FIRST_TOKEN_DEADLINE = "first_token_deadline"


@dataclass(frozen=True, slots=True)
class Features:
    """What the classifier says about one request.

    ``domain`` is the top-scoring domain (``general`` included) and
    ``confidence`` its calibrated probability in [0, 1]; ``scores`` holds
    every domain's probability and ``stage`` names the classifier stage that
    decided.
    """

    domain: str
    confidence: float
    scores: Mapping[str, float] = field(default_factory=dict)
    stage: str = ""

    def __post_init__(self) -> None:
        if not 0.0 <= self.confidence <= 1.0:
            raise ValueError(f"confidence must be in [0, 1], got {self.confidence}")


@dataclass(frozen=True, slots=True)
class ModelState:
    """The router's live view of one model deployment.

    ``queued`` counts the requests the router has outstanding at the model
    (running or waiting there); ``queue_limit`` is how many it may have before
    a new one would wait, i.e. its running replicas times their
    ``max_ongoing_requests``. ``target_limit`` is how many its running
    replicas serve at their autoscaling target (``target_ongoing_requests``
    each): a budget-capped model, which cannot add a replica, keeps the
    requests up to it and spills only the overflow. ``running`` and
    ``starting`` count its replicas that Serve runs and is starting (a
    scale-up, from zero or not, or a garden still coming up); ``running``
    is ``None`` where not known.
    """

    healthy: bool
    queued: int = 0
    queue_limit: int = 1
    budget_capped: bool = False
    target_limit: int | None = None
    running: int | None = None
    starting: int = 0

    @property
    def cold_start(self) -> bool:
        """True while the model has no running replica and one is starting."""
        return self.running == 0 and self.starting > 0

    @property
    def has_capacity(self) -> bool:
        """True while the model's queue is under its limit."""
        return self.queued < self.queue_limit

    @property
    def under_target(self) -> bool:
        """True while the model has fewer requests than its target (its queue limit if unknown)."""
        return self.queued < (self.queue_limit if self.target_limit is None else self.target_limit)


@dataclass(frozen=True, slots=True)
class PolicyConfig:
    """One virtual model's policy.

    ``owners`` maps each domain to its specialist; ``thresholds`` overrides
    ``default_threshold`` per domain. With ``spill`` false the specialist is
    chosen whenever the classifier is confident, whatever its load, health
    or budget (a "never falls back" virtual model).
    """

    generalist: str
    owners: Mapping[str, str]
    default_threshold: float = 0.5
    thresholds: Mapping[str, float] = field(default_factory=dict)
    spill: bool = True

    def threshold(self, domain: str) -> float:
        """The confidence a request of ``domain`` needs to reach its specialist."""
        return self.thresholds.get(domain, self.default_threshold)


@dataclass(frozen=True, slots=True)
class Decision:
    """Where one request goes, and why."""

    model: str
    domain: str
    confidence: float
    reason: Reason
    fallback_from: str | None = None


def decide(
    features: Features, model_states: Mapping[str, ModelState], config: PolicyConfig
) -> Decision:
    """Specialized-first dispatch.

    The top domain's specialist serves when the confidence reaches that
    domain's threshold and (with ``spill``) the specialist is healthy, has
    queue room and, when budget-capped, is still under its target load (or
    the generalist has no room under its own target to take the overflow).
    Otherwise the generalist serves; ``fallback_from`` names the specialist
    that was passed over because of its state (not for low confidence, which
    is a classification outcome).
    """

    def to_generalist(reason: Reason, skipped: str | None = None) -> Decision:
        return Decision(
            config.generalist, features.domain, features.confidence, reason, fallback_from=skipped
        )

    specialist = config.owners.get(features.domain)
    if specialist is None:
        return to_generalist(Reason.GENERAL)
    if features.confidence < config.threshold(features.domain):
        return to_generalist(Reason.LOW_CONFIDENCE)
    if config.spill:
        state = model_states.get(specialist)
        if state is not None and state.cold_start:
            return to_generalist(Reason.COLD_START, specialist)
        if state is None or not state.healthy:
            return to_generalist(Reason.UNHEALTHY, specialist)
        if state.budget_capped and not state.under_target:
            generalist = model_states.get(config.generalist)
            # Overflow moves only to room: a generalist past its own target
            # would serve it no sooner, at a higher cost per token.
            if generalist is None or generalist.under_target:
                return to_generalist(Reason.BUDGET_CAPPED, specialist)
        if not state.has_capacity:
            return to_generalist(Reason.OVERLOADED, specialist)
    return Decision(specialist, features.domain, features.confidence, Reason.SPECIALIST)


_DISPATCH_FALLBACKS = frozenset(
    {Reason.SPECIALIST_ERROR, Reason.FIRST_TOKEN_DEADLINE, Reason.OVERLOADED}
)


def fall_back(decision: Decision, reason: Reason, config: PolicyConfig) -> Decision:
    """Re-route a dispatched specialist request to the generalist, before any byte was sent.

    Used for ``specialist_error``, ``first_token_deadline`` and
    ``overloaded`` (the specialist's own queue refused the request). A
    decision that already went to the generalist cannot fall back further.
    """
    if reason not in _DISPATCH_FALLBACKS:
        raise ValueError(f"{reason.value!r} is decided up front, not a dispatch-time fallback")
    if decision.model == config.generalist:
        raise ValueError("the generalist has nothing to fall back to")
    return replace(decision, model=config.generalist, reason=reason, fallback_from=decision.model)
