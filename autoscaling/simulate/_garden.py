"""The simulated garden's state: one :class:`ModelRun` per model deployment.

Holds what the router and Serve know about each model (replicas, Serve's
queue at the router's handle, outstanding and spilled requests, metric
reporters) and the bookkeeping the report needs (cost, scale events).
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

from autoscaling.profile import Profile
from autoscaling.simulate._controller import Deployment
from autoscaling.simulate._metrics import Reporter
from autoscaling.simulate._replica import Job, Replica, ReplicaState
from cluster.config import ModelSpec

__all__ = ["MATCH_RATE_THRESHOLD", "ModelRun"]

#: Ray Serve LLM's ``PrefixCacheAffinityRouter`` default ``match_rate_threshold``.
MATCH_RATE_THRESHOLD = 0.1


@dataclass(eq=False)
class ModelRun:
    """One model deployment while the trace replays."""

    spec: ModelSpec
    profile: Profile
    deployment: Deployment
    look_back_s: float
    target: int = 0
    replicas: list[Replica] = field(default_factory=list)
    queue: deque[Job] = field(default_factory=deque)  # Serve's queue at the router's handle
    outstanding: int = 0  # the router's requests at this model (sent, not finished)
    spilled: int = 0  # this specialist's requests the router sent to the generalist, in flight
    capped: bool = False  # the budget grants less than the policy wishes
    scale_events: int = 0
    replica_s: float = 0.0  # replica-seconds held within the horizon
    demand: float = 0.0  # look-back demand the controller saw last (running, queued, spilled)
    peak_demand: float = 0.0  # the highest such demand
    names: int = 0
    handle: Reporter = field(init=False)
    kv: dict[str, Reporter] = field(default_factory=dict)
    #: Prompt tokens per prefix-cache block; None: the replay models no prefix cache.
    block_tokens: int | None = None
    #: Replicas picked as Ray Serve LLM's PrefixCacheAffinityRouter does.
    prefix_aware: bool = False

    def __post_init__(self) -> None:
        self.handle = Reporter(self.look_back_s)

    @property
    def name(self) -> str:
        """The model (deployment) name."""
        return self.spec.name

    def running(self) -> list[Replica]:
        """Replicas Serve routes to."""
        return [r for r in self.replicas if r.state is ReplicaState.RUNNING]

    def active(self) -> list[Replica]:
        """Replicas counted toward the target (starting or running)."""
        return [r for r in self.replicas if r.state is not ReplicaState.DRAINING]

    def draining(self) -> int:
        """Replicas shutting down (still held and paid for)."""
        return sum(r.state is ReplicaState.DRAINING for r in self.replicas)

    def free_replica(self, job: Job | None = None) -> Replica | None:
        """Where Serve sends the next request (``job``): a running replica with a free slot.

        By default the one with the fewest ongoing requests. (Serve samples
        two replicas and takes the less busy; taking the least busy of all is
        the deterministic limit of that rule.) With :attr:`prefix_aware`, as
        Ray Serve LLM's ``PrefixCacheAffinityRouter`` does at its defaults
        (load never counts as imbalanced; a match rate of at least
        :data:`MATCH_RATE_THRESHOLD`): the replicas that were sent the
        longest prefix of the job's blocks, or with a lower match rate the
        ones sent the fewest blocks; the least busy of those.
        """
        free = [r for r in self.replicas if r.has_slot]
        if not free:
            return None
        if self.prefix_aware and job is not None and job.blocks:
            matches = {r.name: r.routed_match(job.blocks) for r in free}
            best = max(matches.values())
            if best / len(job.blocks) >= MATCH_RATE_THRESHOLD:
                free = [r for r in free if matches[r.name] == best]
            else:
                fewest = min(len(r.routed) for r in free)
                free = [r for r in free if len(r.routed) == fewest]
        return min(free, key=lambda r: r.ongoing)  # the first among equals, as before

    def new_replica_name(self) -> str:
        """A fresh replica id within this deployment."""
        self.names += 1
        return f"{self.name}-{self.names}"

    def hold(self, replica: Replica, until_s: float, horizon_s: float) -> None:
        """Account ``replica``'s time held, clipped to the horizon."""
        start, end = max(0.0, replica.provisioned_s), min(until_s, horizon_s)
        if end > start:
            self.replica_s += end - start
