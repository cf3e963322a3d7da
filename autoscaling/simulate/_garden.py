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

__all__ = ["ModelRun"]


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

    def free_replica(self) -> Replica | None:
        """Where Serve sends the next request: the running replica with the fewest ongoing.

        (Serve samples two replicas and takes the less busy; taking the least
        busy of all is the deterministic limit of that rule.)
        """
        best: Replica | None = None
        for r in self.replicas:
            if r.has_slot and (best is None or r.ongoing < best.ongoing):
                best = r
        return best

    def new_replica_name(self) -> str:
        """A fresh replica id within this deployment."""
        self.names += 1
        return f"{self.name}-{self.names}"

    def hold(self, replica: Replica, until_s: float, horizon_s: float) -> None:
        """Account ``replica``'s time held, clipped to the horizon."""
        start, end = max(0.0, replica.provisioned_s), min(until_s, horizon_s)
        if end > start:
            self.replica_s += end - start
