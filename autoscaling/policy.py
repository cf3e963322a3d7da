"""The garden's per-model autoscaling policy, in Ray Serve's custom-policy form.

Ray Serve builds :class:`GardenPolicy` once per deployment from
``autoscaling_config.policy.policy_kwargs`` and calls it every control
period with an ``AutoscalingContext``; it returns ``(replicas, state)`` like
Ray's own policies. Inside, the pure rule (:func:`load_policy`) is wrapped by
bounds and delays (:mod:`autoscaling._wrappers`). Ray's own delays are set to
zero for deployments using this policy, so the config's delays apply once.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from autoscaling._load import Capacity, Load, desired_replicas
from autoscaling._wrappers import Policy, bounded, budget_clamped, delayed

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


def load_of(ctx: Any) -> Load:
    """The load an ``AutoscalingContext`` describes (custom metrics when present)."""
    metrics: Mapping[str, Mapping[Any, float]] = ctx.aggregated_metrics or {}
    spilled = metrics.get(SPILLED_METRIC)
    return Load(
        running=float(ctx.total_running_requests),
        queued=float(ctx.total_queued_requests or 0.0),
        spilled=sum(spilled.values()) if spilled else 0.0,
        kv_usage=_mean(metrics.get(KV_USAGE_METRIC)),
    )


def load_policy(ctx: Any, capacity: Capacity) -> tuple[float, dict[str, Any]]:
    """The core rule in Ray's shape: desired (fractional) replicas for the context's load."""
    return desired_replicas(load_of(ctx), capacity, int(ctx.current_num_replicas)), dict(
        ctx.policy_state or {}
    )


class GardenPolicy:
    """Per-model policy: load → replicas, rounded and bounded, then delayed.

    Keyword arguments come from the model's config (``policy_kwargs`` must be
    JSON): ``slots`` is the requests one replica serves within its TTFT SLO.
    ``allowance`` (not JSON, for the simulator and the budget arbiter) caps
    the replicas the budget grants this model.
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
        allowance: Callable[[Any], int | None] | None = None,
        clock: Callable[[Any], float] | None = None,
    ) -> None:
        capacity = Capacity(slots, kv_target)

        def core(ctx: Any) -> tuple[float, dict[str, Any]]:
            return load_policy(ctx, capacity)

        policy: Policy = bounded(core, min_replicas, max_replicas)
        policy = (
            delayed(policy, upscale_delay_s, downscale_delay_s)
            if clock is None
            else delayed(policy, upscale_delay_s, downscale_delay_s, clock)
        )
        if allowance is not None:
            policy = budget_clamped(policy, allowance)
        self._policy = policy

    def __call__(self, ctx: Any) -> tuple[int, dict[str, Any]]:
        wish, state = self._policy(ctx)
        return int(wish), state
