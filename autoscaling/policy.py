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
from collections.abc import Callable, Mapping
from typing import Any

from autoscaling._ledger import Budget, Ledger, ledger_for
from autoscaling._load import Capacity, Load, desired_replicas
from autoscaling._wrappers import Policy, bounded, budget_clamped, claimed, delayed
from autoscaling.budget import Claim
from autoscaling.signals import SpillReader, publish_capped

__all__ = [
    "KV_USAGE_METRIC",
    "POLICY_IMPORT_PATH",
    "SPILLED_METRIC",
    "GardenPolicy",
    "load_of",
    "load_policy",
]

#: Import path Ray Serve is given for the garden policy.
POLICY_IMPORT_PATH = "autoscaling.policy:GardenPolicy"
#: Custom autoscaling metric a replica reports: fraction of its KV cache in use.
KV_USAGE_METRIC = "kv_cache_usage"
#: Custom autoscaling metric: requests spilled away from this model by the router.
SPILLED_METRIC = "spilled_requests"


def _mean(per_replica: Mapping[Any, float] | None) -> float | None:
    if not per_replica:
        return None
    return sum(per_replica.values()) / len(per_replica)


def load_of(ctx: Any, spilled: float = 0.0) -> Load:
    """The load an ``AutoscalingContext`` describes (custom metrics when present).

    ``spilled`` adds requests the router sent elsewhere for want of this model.
    """
    metrics: Mapping[str, Mapping[Any, float]] = ctx.aggregated_metrics or {}
    reported = metrics.get(SPILLED_METRIC)
    return Load(
        running=float(ctx.total_running_requests),
        queued=float(ctx.total_queued_requests or 0.0),
        spilled=(sum(reported.values()) if reported else 0.0) + spilled,
        kv_usage=_mean(metrics.get(KV_USAGE_METRIC)),
    )


def load_policy(ctx: Any, capacity: Capacity, spilled: float = 0.0) -> tuple[float, dict[str, Any]]:
    """The core rule in Ray's shape: desired (fractional) replicas for the context's load."""
    load = load_of(ctx, spilled)
    return desired_replicas(load, capacity, int(ctx.current_num_replicas)), dict(
        ctx.policy_state or {}
    )


class GardenPolicy:
    """Per-model policy: load → replicas, rounded and bounded, delayed, then budget-clamped.

    Keyword arguments come from the model's config (``policy_kwargs`` must be
    JSON): ``slots`` is the requests one replica serves within its TTFT SLO.
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
        slots: float,
        min_replicas: int,
        max_replicas: int,
        upscale_delay_s: float,
        downscale_delay_s: float,
        kv_target: float = 0.85,
        app: str = "garden",
        model: str = "",
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
        capacity = Capacity(slots, kv_target)
        if spilled is None and read_spills:
            spilled = SpillReader(app)
        spill_of = spilled or (lambda _: 0.0)

        def core(ctx: Any) -> tuple[float, dict[str, Any]]:
            return load_policy(ctx, capacity, spill_of(model))

        def claim_of(ctx: Any, wish: float) -> Claim:
            demand = load_of(ctx, spill_of(model)).demand
            # Claim what the model holds while a downscale waits out its delay:
            # claiming only the dipped wish would let the grant cut the replica
            # at once and skip the delay. Held replicas also outrank new ones of
            # the same priority in the arbiter, so grants do not thrash.
            held = int(ctx.target_num_replicas)
            return Claim(
                model, max(int(wish), held), demand, slots, min_replicas, max_replicas,
                cost_per_hour, gpus, priority, held,
            )  # fmt: skip

        budget = Budget(max_cost_per_hour, max_gpus)
        if ledger is None and allowance is None and not budget.unlimited:
            ledger = ledger_for(app, budget)
            if on_capped is None:
                on_capped = functools.partial(publish_capped, app)
        policy: Policy = bounded(core, min_replicas, max_replicas)
        if ledger is not None:
            policy = claimed(policy, ledger.claim, claim_of)
        policy = (
            delayed(policy, upscale_delay_s, downscale_delay_s)
            if clock is None
            else delayed(policy, upscale_delay_s, downscale_delay_s, clock)
        )
        if ledger is not None:
            shared = ledger

            def allowance(ctx: Any) -> int | None:
                return shared.allowance(model)

        if allowance is not None:
            policy = budget_clamped(policy, allowance)
        self._policy = policy
        self._ledger = ledger
        self._on_capped = on_capped
        self._capped: frozenset[str] | None = None

    def __call__(self, ctx: Any) -> tuple[int, dict[str, Any]]:
        wish, state = self._policy(ctx)
        if self._ledger is not None and self._on_capped is not None:
            capped = self._ledger.capped()
            if capped != self._capped:  # tell the router only about changes
                self._capped = capped
                self._on_capped(capped)
        return int(wish), state
