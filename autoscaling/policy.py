"""The garden's per-model autoscaling policy, in Ray Serve's custom-policy form.

Ray Serve builds :class:`GardenPolicy` once per deployment from
``autoscaling_config.policy.policy_kwargs`` and calls it every control
period with an ``AutoscalingContext``; it returns ``(replicas, state)`` like
Ray's own policies. Inside, the pure rule (:func:`load_policy`) is wrapped by
bounds and delays (:mod:`autoscaling._wrappers`). Ray's own delays are set to
zero for deployments using this policy, so the config's delays apply once.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Mapping
from typing import Any

from autoscaling._ledger import Budget, Ledger, ledger_for
from autoscaling._load import Capacity, Load, desired_replicas
from autoscaling._timing import Timing, timed
from autoscaling._wrappers import Policy, bounded, budget_clamped, claimed
from autoscaling.budget import Claim
from autoscaling.metrics import (
    KV_USAGE_METRIC,
    PREFILL_TOKENS_WAITING_METRIC,
    PROMPT_TOKENS_PER_S_METRIC,
    REQUESTS_PER_S_METRIC,
    RUNNING_SEQUENCES_METRIC,
)
from autoscaling.profile import Profile, load_profiles
from autoscaling.signals import SpillReader, publish_capped
from cluster.config import DEFAULT_KV_TARGET

__all__ = [
    "POLICY_IMPORT_PATH",
    "GardenPolicy",
    "load_of",
    "load_policy",
]

#: Import path Ray Serve is given for the garden policy.
POLICY_IMPORT_PATH = "autoscaling.policy:GardenPolicy"


def _mean(per_replica: Mapping[Any, float] | None) -> float | None:
    if not per_replica:
        return None
    return sum(per_replica.values()) / len(per_replica)


def _total(per_replica: Mapping[Any, float] | None) -> float | None:
    return None if not per_replica else float(sum(per_replica.values()))


def load_of(ctx: Any, spilled: float = 0.0) -> Load:
    """The load an ``AutoscalingContext`` describes (the replicas' custom metrics when present).

    ``spilled`` adds requests the router sent elsewhere for want of this
    model. Work metrics are summed over replicas (each is the replica's
    look-back mean); KV usage is their mean.
    """
    metrics: Mapping[str, Mapping[Any, float]] = ctx.aggregated_metrics or {}
    return Load(
        running=float(ctx.total_running_requests),
        queued=float(ctx.total_queued_requests or 0.0),
        spilled=spilled,
        kv_usage=_mean(metrics.get(KV_USAGE_METRIC)),
        prompt_tokens_per_s=_total(metrics.get(PROMPT_TOKENS_PER_S_METRIC)),
        requests_per_s=_total(metrics.get(REQUESTS_PER_S_METRIC)),
        prefill_tokens_waiting=_total(metrics.get(PREFILL_TOKENS_WAITING_METRIC)),
        running_sequences=_total(metrics.get(RUNNING_SEQUENCES_METRIC)),
    )


def load_policy(ctx: Any, capacity: Capacity, spilled: float = 0.0) -> tuple[float, dict[str, Any]]:
    """The core rule in Ray's shape: desired (fractional) replicas for the context's load."""
    load = load_of(ctx, spilled)
    return desired_replicas(load, capacity, int(ctx.current_num_replicas)), dict(
        ctx.policy_state or {}
    )


def _profile_of(profile: str | Profile | None, model: str) -> Profile | None:
    """``profile`` as given, or ``model``'s profile in the profile file it names."""
    if profile is None or isinstance(profile, Profile):
        return profile
    return load_profiles(profile).for_model(model)


def _no_spills(model: str) -> float:
    return 0.0


class GardenPolicy:
    """Per-model policy: load → replicas, rounded and bounded, delayed, then budget-clamped.

    Keyword arguments come from the model's config (``policy_kwargs`` must be
    JSON): ``target_ongoing_requests`` is the requests one replica serves within its TTFT SLO.
    With a budget (``max_cost_per_hour`` / ``max_gpus``) the policy records
    its claim in the garden's :class:`~autoscaling._ledger.Ledger` (shared
    by the garden's policies in the controller process) and is clamped to
    what the arbiter grants; ``on_capped`` hears which models are capped.
    ``spilled(model)`` (or, with ``read_spills``, the router's reports in
    Ray's KV store) adds the requests the router sent elsewhere for want of
    this model to its demand.
    ``allowance`` (a replay's own arbiter) replaces the ledger. ``clock``
    defaults to the context's ``current_time``.
    """

    def __init__(
        self,
        *,
        target_ongoing_requests: float,
        min_replicas: int,
        max_replicas: int,
        kv_target: float = DEFAULT_KV_TARGET,
        app: str = "garden",
        model: str = "",
        generalist: str = "",
        profile: str | Profile | None = None,
        ttft_ms: float = 1000.0,
        ttft_ms_per_1k_prompt_tokens: float = 0.0,
        tpot_ms: float = 200.0,
        miss_penalty: float = 4.0,
        cost_per_hour: float = 0.0,
        gpus: float = 0.0,
        priority: int = 0,
        max_cost_per_hour: float | None = None,
        max_gpus: float | None = None,
        allowance: Callable[[Any], int | None] | None = None,
        clock: Callable[[Any], float] | None = None,
        ledger: Ledger | None = None,
        on_capped: Callable[[frozenset[str]], None] | None = None,
        read_spills: bool = False,
        spilled: Callable[[str], float] | None = None,
    ) -> None:
        self.model, self._generalist = model, generalist
        self._min, self._max = min_replicas, max_replicas
        self._cost, self._gpus, self._priority = cost_per_hour, gpus, priority
        self.capacity = Capacity(
            target_ongoing_requests,
            kv_target,
            profile=_profile_of(profile, model),
            ttft_s=ttft_ms / 1000.0,
            ttft_s_per_token=ttft_ms_per_1k_prompt_tokens / 1e6,
            tpot_s=tpot_ms / 1000.0,
        )
        # Where the router's spills come from: the caller's, else Ray's KV store, else none.
        self._spilled = spilled or (SpillReader.for_app(app) if read_spills else _no_spills)
        self._ledger = ledger or ledger_for(app, Budget(max_cost_per_hour, max_gpus))
        # The ledger's budget binds unless a replay's own arbiter (``allowance``) grants.
        self._budgeted = allowance is None and not self._ledger.budget.unlimited
        # Who hears which models are capped: the caller, else (own ledger) the router.
        self._on_capped: Callable[[frozenset[str]], None] | None = None
        if self._budgeted:
            own = functools.partial(publish_capped, app) if ledger is None else None
            self._on_capped = on_capped or own
        self._capped: frozenset[str] | None = None
        timing = Timing(
            self.capacity.cold_start_s,
            target_ongoing_requests,
            miss_penalty=miss_penalty,
            overflow_room=self._overflow_room if generalist and generalist != model else None,
            clock=clock,
        )
        self._policy = self._composed(timing, self._allowance if self._budgeted else allowance)

    def _composed(self, timing: Timing, allowance: Callable[[Any], int | None] | None) -> Policy:
        """The wrapped rule, innermost first.

        :meth:`wish` (the load rule), bounded but fractional; its claim
        recorded in the ledger; delayed by ``timing``; rounded and bounded;
        then clamped to what ``allowance`` grants (the budget), if any.
        """
        policy: Policy = bounded(self.wish, self._min, self._max, whole=False)
        policy = claimed(policy, self._ledger.claim, self.claim)
        policy = bounded(timed(policy, timing), self._min, self._max)
        return policy if allowance is None else budget_clamped(policy, allowance)

    def load(self, ctx: Any) -> Load:
        """This model's load in ``ctx``, with the router's spills added."""
        return load_of(ctx, self._spilled(self.model))

    def wish(self, ctx: Any) -> tuple[float, dict[str, Any]]:
        """The core rule: replicas (fractional) that serve the load now."""
        wish = desired_replicas(self.load(ctx), self.capacity, int(ctx.current_num_replicas))
        return wish, dict(ctx.policy_state or {})

    def claim(self, ctx: Any, wish: float) -> Claim:
        """What this model asks of the budget arbiter for ``wish`` (bounded) replicas.

        It claims at least what it holds while a downscale waits out its
        hold: claiming only the dipped wish would let the grant cut the
        replica at once. Held replicas also outrank new ones of the same
        priority in the arbiter, so grants do not thrash.
        """
        held = int(ctx.target_num_replicas)
        load = self.load(ctx)
        need = desired_replicas(load, self.capacity, int(ctx.current_num_replicas))
        return Claim(
            self.model, max(math.ceil(wish - 1e-9), held), load.demand,
            self.capacity.target_ongoing_requests, self._min, self._max, self._cost, self._gpus,
            self._priority, held, need,
        )  # fmt: skip

    def claim_now(self, ctx: Any) -> Claim:
        """The claim this model would record for ``ctx`` (its bounded wish)."""
        wish = min(self._max, max(self._min, math.ceil(self.wish(ctx)[0] - 1e-9)))
        return self.claim(ctx, wish)

    def _allowance(self, ctx: Any) -> int | None:
        return self._ledger.allowance(self.model)

    def _overflow_room(self, ctx: Any, excess: float) -> bool:
        """Has the generalist spare capacity (at its target) for ``excess`` requests?"""
        return self._ledger.spare(self._generalist) >= excess

    def __call__(self, ctx: Any) -> tuple[int, dict[str, Any]]:
        wish, state = self._policy(ctx)
        if self._on_capped is not None:
            capped = self._ledger.capped()
            if capped != self._capped:  # tell the router only about changes
                self._capped = capped
                self._on_capped(capped)
        return int(wish), state
