"""The Serve controller's side of one deployment: its config, policy and context.

:func:`ray_wrapped` is Ray's ``_apply_autoscaling_config`` (the wrapper Ray
puts around every deployment policy: cold-start fast path, scaling factors
and delays) composed from Ray's own pieces, with one change: the delays are
timed by ``ctx.current_time`` (the simulated clock) instead of
``time.time()``, through the ``_now`` argument Ray's delay logic offers (all of it reached
through :mod:`cluster.ray_internals`).
:meth:`Deployment.decide` then rounds and bounds the answer as
``DeploymentAutoscalingState.get_decision_num_replicas`` does.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal, cast

from ray.serve.autoscaling_policy import replica_queue_length_autoscaling_policy
from ray.serve.config import AutoscalingConfig, AutoscalingContext

from autoscaling._ledger import Ledger
from autoscaling.policy import GardenPolicy
from autoscaling.profile import Profile
from cluster.config import GardenConfig, ModelSpec
from cluster.ray_internals import (
    apply_delay_logic,
    apply_scaling_factors,
    cold_start_replicas,
    deployment_id,
    internal_policy_state,
    replica_id,
)
from deployments.model import autoscaling_config

__all__ = ["POLICIES", "Deployment", "PolicyName", "RayKnobs", "ray_wrapped"]

PolicyName = Literal["garden", "ray-default", "ray-tuned", "static-peak", "static-partition"]
POLICIES: tuple[PolicyName, ...] = (
    "garden",
    "ray-default",
    "ray-tuned",
    "static-peak",
    "static-partition",
)


@dataclass(frozen=True, slots=True)
class RayKnobs:
    """Ray's own knobs, as a Ray user would tune them: its delays and its target.

    ``target_scale`` multiplies the shared per-replica target (the profile's
    capacity at the SLO) that ``ray-default`` is given.
    """

    upscale_delay_s: float
    downscale_delay_s: float
    target_scale: float = 1.0


RawPolicy = Callable[[Any], tuple[float, dict[str, Any]]]
WrappedPolicy = Callable[[AutoscalingContext], tuple[int, dict[str, Any]]]


def ray_wrapped(policy: RawPolicy) -> WrappedPolicy:
    """Ray's wrapper around a deployment policy, timed by the context's clock."""

    def wrapped(ctx: AutoscalingContext) -> tuple[int, dict[str, Any]]:
        cold = cold_start_replicas(ctx)
        if cold is not None:
            return cold, ctx.policy_state
        config = cast(AutoscalingConfig, ctx.config)  # always set by the controller
        internal = internal_policy_state(ctx.policy_state.copy())
        desired, user_state = policy(ctx)
        scaled = apply_scaling_factors(desired, ctx.current_num_replicas, config)
        if ctx.current_num_replicas == 0 and scaled > 0:
            final, updated = scaled, internal
        else:
            final, updated = apply_delay_logic(
                max(0, scaled), ctx.target_num_replicas, config, internal, ctx.current_time
            )
        if updated:
            user_state.update(updated)
        return final, user_state

    return wrapped


class Deployment:
    """One model's autoscaling as the controller runs it."""

    def __init__(
        self,
        garden: GardenConfig,
        spec: ModelSpec,
        policy: PolicyName,
        target_ongoing_requests: float,
        allowance: Callable[[Any], int | None] | None = None,
        spilled: Callable[[str], float] | None = None,
        knobs: RayKnobs | None = None,
        ledger: Ledger | None = None,
        profile: Profile | None = None,
    ) -> None:
        # ``target_ongoing_requests`` (the garden's and Ray's target alike) replaces the
        # config's; the caller decides where it comes from.
        if knobs is not None:
            if policy == "garden":
                raise ValueError("RayKnobs tune Ray's policy, not the garden's")
            target_ongoing_requests *= knobs.target_scale
        # The replay's policy sizes every model, whatever a model names for itself.
        scaling = spec.autoscaling.model_copy(
            update={"target_ongoing_requests": target_ongoing_requests, "policy": None}
        )
        spec = spec.model_copy(update={"autoscaling": scaling})
        timing = garden.autoscaling.model_copy(
            update={"policy": "garden" if policy == "garden" else "ray-default"}
        )
        config = autoscaling_config(garden.model_copy(update={"autoscaling": timing}), spec)
        self.target_ongoing_requests = float(scaling.target_ongoing_requests)
        self.min_replicas, self.max_replicas = scaling.min_replicas, scaling.max_replicas
        self.start_replicas = scaling.start_replicas
        self.policy_name = policy
        self.id = deployment_id(spec.name, garden.name)
        self.state: dict[str, Any] = {}
        self.last_up_s: float | None = None
        self.last_down_s: float | None = None
        raw: RawPolicy
        self.policy: GardenPolicy | None = None
        if policy == "garden":
            kwargs = dict(config["policy"]["policy_kwargs"])
            # The replay's arbiter replaces the controller-wide ledger, and the
            # replay's router count replaces the spills read from Ray's KV store.
            kwargs.pop("read_spills", None)
            if allowance is None:
                kwargs.update(max_cost_per_hour=None, max_gpus=None)
            if profile is not None:
                kwargs["profile"] = profile  # the replay's profile, the policy's information
            raw = self.policy = GardenPolicy(
                **kwargs,
                ledger=ledger,
                allowance=allowance,
                clock=lambda c: c.current_time,
                spilled=spilled or (lambda _: 0.0),
            )
            self.kwargs: dict[str, Any] = kwargs
        else:
            if knobs is not None:
                config.update(
                    upscale_delay_s=knobs.upscale_delay_s,
                    downscale_delay_s=knobs.downscale_delay_s,
                )
            else:
                # Ray's own default delays, whatever the garden config says.
                config.pop("upscale_delay_s", None)
                config.pop("downscale_delay_s", None)
            raw = replica_queue_length_autoscaling_policy
            self.kwargs = {}
        config.pop("policy", None)  # the callable is built here, not imported by Ray
        self.config = AutoscalingConfig(**config)
        self._policy = ray_wrapped(raw)

    def context(
        self,
        now: float,
        target: int,
        running: list[Any],
        total_requests: float,
        queued_requests: float,
        aggregated: Mapping[str, Mapping[Any, float]],
    ) -> AutoscalingContext:
        """The ``AutoscalingContext`` Ray's controller would build at ``now``."""
        return AutoscalingContext(
            deployment_id=self.id,
            deployment_name=self.id.name,
            app_name=self.id.app_name,
            current_num_replicas=len(running),
            target_num_replicas=target,
            running_replicas=running,
            total_num_requests=total_requests,
            total_queued_requests=queued_requests,
            aggregated_metrics={k: dict(v) for k, v in aggregated.items()},
            raw_metrics={},
            capacity_adjusted_min_replicas=self.min_replicas,
            capacity_adjusted_max_replicas=self.max_replicas,
            policy_state=dict(self.state),
            last_scale_up_time=self.last_up_s,
            last_scale_down_time=self.last_down_s,
            current_time=now,
            config=self.config,
        )

    def decide(self, ctx: AutoscalingContext) -> int:
        """The new target: the wrapped policy's answer, rounded up and bounded."""
        replicas, self.state = self._policy(ctx)
        if isinstance(replicas, float):
            replicas = math.ceil(replicas)
        return max(self.min_replicas, min(self.max_replicas, int(replicas)))

    def garden_policy(self) -> GardenPolicy:
        """The garden policy this deployment runs (ValueError for Ray's)."""
        if self.policy is None:
            raise ValueError(f"{self.id.name} runs {self.policy_name!r}, not the garden policy")
        return self.policy

    def replica_id(self, name: str) -> Any:
        """Ray's id (``ReplicaID``) of this deployment's replica ``name``."""
        return replica_id(name, self.id)
