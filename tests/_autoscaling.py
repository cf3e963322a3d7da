"""A stand-in for the AutoscalingContext fields the garden policy reads."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class Ctx:
    """The AutoscalingContext fields the policy reads."""

    total_running_requests: float = 0.0
    total_queued_requests: float = 0.0
    current_num_replicas: int = 1
    target_num_replicas: int = 1
    aggregated_metrics: dict[str, dict[str, float]] = field(default_factory=dict)
    policy_state: dict[str, Any] = field(default_factory=dict)
    current_time: float = 0.0
