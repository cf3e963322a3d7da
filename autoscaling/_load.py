"""The core autoscaling rule: LLM load in, desired replicas out (pure).

A replica serves ``slots`` requests at once within its TTFT SLO (its batch
capacity at that SLO, from the model's profile or config). Demand is what
runs, what waits, and what the router spilled to the generalist because the
specialist was full or capped: that overflow is the specialist's demand too.
Where the engine reports KV-cache usage, replicas are also kept under
``kv_target`` of their cache, since a full cache preempts requests long
before the request count says so.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Capacity", "Load", "desired_replicas"]


@dataclass(frozen=True, slots=True)
class Load:
    """What one model is asked to do right now, summed over its replicas."""

    running: float
    queued: float = 0.0
    spilled: float = 0.0
    kv_usage: float | None = None  # mean fraction of KV cache in use, over replicas

    @property
    def demand(self) -> float:
        """Requests the model should be serving: running, waiting and spilled."""
        return self.running + self.queued + self.spilled


@dataclass(frozen=True, slots=True)
class Capacity:
    """How much one replica of the model can take at its SLO."""

    slots: float
    kv_target: float = 0.85

    def __post_init__(self) -> None:
        if self.slots <= 0:
            raise ValueError(f"slots must be > 0, got {self.slots}")
        if not 0 < self.kv_target <= 1:
            raise ValueError(f"kv_target must be in (0, 1], got {self.kv_target}")


def desired_replicas(load: Load, capacity: Capacity, current: int) -> float:
    """Replicas (fractional) that serve ``load`` within the SLO.

    The larger of what the request count needs and what the KV cache needs;
    bounds, delays and the budget are applied by wrappers, not here.
    """
    by_requests = load.demand / capacity.slots
    if load.kv_usage is None or current == 0:
        return by_requests
    return max(by_requests, current * load.kv_usage / capacity.kv_target)
