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

from cluster.exceptions import UnsupportedRequestError

__all__ = [
    "GENERAL_DOMAIN",
    "Capabilities",
    "Decision",
    "Features",
    "ModelState",
    "Needs",
    "PolicyConfig",
    "Reason",
    "Session",
    "decide",
    "fall_back",
    "session_after",
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
    UNSUPPORTED = "unsupported"
    SESSION = "session"


@dataclass(frozen=True, slots=True)
class Session:
    """A conversation's domain decision: the domain its turns go to, and why it was chosen.

    ``domain`` is a specialist's domain, or ``general`` for the generalist;
    ``reason`` is the reason of the turn that chose it (never ``session``).
    """

    domain: str
    reason: Reason


@dataclass(frozen=True, slots=True)
class Needs:
    """What one request needs of the model that serves it (see ``router.needs_of``).

    ``tools``: tool definitions the model may call on its own (``tool_choice``
    absent or ``auto``), which needs vLLM's auto tool choice and a tool-call
    parser; ``forced_tools``: a call it must make (``required`` or a named
    function), which needs the parser only; ``images``: image inputs;
    ``logprobs``: how many log-probabilities per token it asks for;
    ``tokens``: a lower bound on the prompt's tokens plus ``max_tokens``.
    """

    tools: bool = False
    images: bool = False
    logprobs: int = 0
    tokens: int = 0
    forced_tools: bool = False


@dataclass(frozen=True, slots=True)
class Capabilities:
    """What one model can serve, from its engine config.

    ``tools``: auto tool choice (``enable_auto_tool_choice`` and a parser);
    ``tool_parser``: a ``tool_call_parser``, which forced calls need.
    ``max_model_len`` ``None`` means not known (no prompt is refused for length).
    """

    tools: bool = False
    images: bool = False
    max_logprobs: int = 20
    max_model_len: int | None = None
    tool_parser: bool = False

    def lacks(self, needs: Needs) -> list[str]:
        """The features of ``needs`` this model cannot serve, by request parameter."""
        missing = []
        if (needs.tools and not self.tools) or (
            needs.forced_tools and not (self.tool_parser or self.tools)
        ):
            missing.append("tools")
        if needs.images and not self.images:
            missing.append("images")
        if needs.logprobs > self.max_logprobs:
            missing.append("logprobs")
        if self.max_model_len is not None and needs.tokens > self.max_model_len:
            missing.append("context")
        return missing


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

    ``outstanding`` counts the requests the router has outstanding at the model
    (running or waiting there); ``queue_limit`` is how many it may have before
    a new one would wait, i.e. its running replicas times their
    ``max_ongoing_requests``. ``target_limit`` is how many its running
    replicas serve at their autoscaling target (``target_ongoing_requests``
    each): a budget-capped model, which cannot add a replica, keeps the
    requests up to it and spills only the overflow. ``running`` and
    ``starting`` count its replicas that Serve runs and is starting (a
    scale-up, from zero or not, or a garden still coming up); ``running``
    is ``None`` where not known. ``cooling`` says that it is unhealthy for
    a cooldown (a missed deadline or failures, :mod:`router._cooldown`).
    """

    healthy: bool
    cooling: bool = False
    outstanding: int = 0
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
        return self.outstanding < self.queue_limit

    @property
    def under_target(self) -> bool:
        """True while the model has fewer requests than its target (its queue limit if unknown)."""
        return self.outstanding < (
            self.queue_limit if self.target_limit is None else self.target_limit
        )


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
    capabilities: Mapping[str, Capabilities] = field(default_factory=dict)

    def threshold(self, domain: str) -> float:
        """The confidence a request of ``domain`` needs to reach its specialist."""
        return self.thresholds.get(domain, self.default_threshold)

    def can_serve(self, model: str, needs: Needs) -> bool:
        """True when ``model`` has every feature ``needs`` asks for (unknown models can)."""
        caps = self.capabilities.get(model)
        return caps is None or not caps.lacks(needs)


@dataclass(frozen=True, slots=True)
class Decision:
    """Where one request goes, and why."""

    model: str
    domain: str
    confidence: float
    reason: Reason
    fallback_from: str | None = None


def decide(
    features: Features,
    model_states: Mapping[str, ModelState],
    config: PolicyConfig,
    needs: Needs = Needs(),
    session: Session | None = None,
) -> Decision:
    """Specialized-first dispatch, among the models that can serve ``needs``.

    The top domain's specialist serves when the confidence reaches that
    domain's threshold and (with ``spill``) the specialist is healthy, has
    queue room and, when budget-capped, is still under its target load (or
    the generalist has no room under its own target to take the overflow).
    Otherwise the generalist serves; ``fallback_from`` names the specialist
    that was passed over because of its state (not for low confidence, which
    is a classification outcome).

    A model that lacks a feature the request needs is never chosen: the
    specialist that lacks it is passed over (``unsupported``); where the
    generalist lacks it, the most likely capable specialist serves instead,
    and no spill moves the request to the generalist. Raises
    :class:`~cluster.exceptions.UnsupportedRequestError` when no model can.

    With ``session`` (the conversation's earlier domain decision), the
    session's domain replaces the classifier's, whatever its confidence, and
    the decision's reason is ``session``; every spill rule still applies, so
    a specialist that is down, full, capped or cold still passes the turn to
    the generalist (with that reason).
    """
    if session is not None:
        return _sticky(features, model_states, config, needs, session)
    generalist_can = config.can_serve(config.generalist, needs)

    def to_generalist(reason: Reason, skipped: str | None = None) -> Decision:
        if generalist_can:
            return Decision(
                config.generalist, features.domain, features.confidence, reason, skipped
            )
        return _to_capable(features, model_states, config, needs, skipped or config.generalist)

    specialist = config.owners.get(features.domain)
    if specialist is None:
        return to_generalist(Reason.GENERAL)
    if not config.can_serve(specialist, needs):
        return to_generalist(Reason.UNSUPPORTED, specialist)
    if features.confidence < config.threshold(features.domain):
        return to_generalist(Reason.LOW_CONFIDENCE)
    if config.spill and generalist_can:
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


def _sticky(
    features: Features,
    model_states: Mapping[str, ModelState],
    config: PolicyConfig,
    needs: Needs,
    session: Session,
) -> Decision:
    if session.domain not in config.owners:  # no such owner (any more): decide afresh
        return decide(features, model_states, config, needs)
    confidence = features.scores.get(session.domain, features.confidence)
    domain_features = Features(session.domain, 1.0, features.scores, features.stage)
    decision = decide(domain_features, model_states, config, needs)
    decision = replace(decision, confidence=confidence)
    if decision.reason in (Reason.SPECIALIST, Reason.GENERAL):
        return replace(decision, reason=Reason.SESSION)
    return decision


def session_after(
    decision: Decision, config: PolicyConfig, session: Session | None
) -> Session | None:
    """The conversation's domain decision after a turn served as ``decision``.

    A turn that its specialist served on the classifier's word starts the
    session; a ``session`` turn keeps it; every other turn leaves it as it
    was. A conversation the generalist serves (general, unsure, or as
    cover) is decided afresh on each turn, so it reaches a specialist as
    soon as one fits: the generalist can serve anything, and pinning a
    conversation to it after a vague first turn ("hi") would keep it from
    every specialist for as long as it lasts.
    """
    if decision.reason is Reason.SPECIALIST and decision.model in config.owners.values():
        return Session(decision.domain, Reason.SPECIALIST)
    return session


def _to_capable(
    features: Features,
    model_states: Mapping[str, ModelState],
    config: PolicyConfig,
    needs: Needs,
    skipped: str,
) -> Decision:
    """The capable owner that can take the request now and scored highest; raises if none can.

    Owners that are running with room come first, then the rest, each by
    their domain's score.
    """

    def ready(model: str) -> bool:
        state = model_states.get(model)
        return state is not None and state.healthy and state.has_capacity

    ranked = sorted(
        config.owners.items(), key=lambda kv: (not ready(kv[1]), -features.scores.get(kv[0], 0.0))
    )
    for _, model in ranked:
        if config.can_serve(model, needs):
            return Decision(
                model, features.domain, features.confidence, Reason.UNSUPPORTED, skipped
            )
    lacking = {m: c.lacks(needs) for m, c in sorted(config.capabilities.items()) if ":" not in m}
    missing = sorted({f for features_ in lacking.values() for f in features_})
    detail = "; ".join(f"{m} lacks {', '.join(f)}" for m, f in lacking.items() if f)
    raise UnsupportedRequestError(
        f"no model of this garden can serve this request ({detail})",
        param=_PARAMS.get(missing[0]) if missing else None,
    )


#: The request parameter each missing feature comes from.
_PARAMS = {
    "tools": "tools",
    "images": "messages",
    "logprobs": "top_logprobs",
    "context": "messages",
}


_DISPATCH_FALLBACKS = frozenset(
    {Reason.SPECIALIST_ERROR, Reason.FIRST_TOKEN_DEADLINE, Reason.OVERLOADED, Reason.UNHEALTHY}
)


def fall_back(decision: Decision, reason: Reason, config: PolicyConfig) -> Decision:
    """Re-route a dispatched specialist request to the generalist, before any byte was sent.

    Used for ``specialist_error``, ``first_token_deadline``, ``overloaded``
    (the specialist's own queue refused the request) and ``unhealthy`` (its
    cooldown began while the request waited). A decision that already went
    to the generalist cannot fall back further.
    """
    if reason not in _DISPATCH_FALLBACKS:
        raise ValueError(f"{reason.value!r} is decided up front, not a dispatch-time fallback")
    if decision.model == config.generalist:
        raise ValueError("the generalist has nothing to fall back to")
    return replace(decision, model=config.generalist, reason=reason, fallback_from=decision.model)
