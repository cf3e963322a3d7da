"""Ray Serve's autoscaling metrics pipeline, replayed on the simulation clock.

Each reporter (the router's handle to a model, or a replica reporting
custom metrics) records a point every ``record_interval_s`` into Ray's own
``InMemoryMetricsStore`` and pushes the look-back window to the controller
every ``metrics_interval_s``, as ``ray.serve._private.router`` and
``replica`` do. The controller reduces what was last pushed with Ray's own
merge and time-weighted mean (:func:`window_mean`), the way
``DeploymentAutoscalingState._merge_and_aggregate_timeseries`` does, but at
the simulated ``now`` instead of ``time.time()``.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence
from typing import Any

from cluster.ray_internals import aggregate_mean, merge_instantaneous_total, metrics_store

__all__ = ["RECORD_INTERVAL_FACTOR", "Reporter", "record_interval", "window_mean"]

#: Ray's RAY_SERVE_AUTOSCALING_METRIC_RECORD_INTERVAL_FACTOR default.
RECORD_INTERVAL_FACTOR = 0.2

Series = list[Any]  # list[ray.serve._private.common.TimeStampedValue]


def record_interval(look_back_period_s: float, metrics_interval_s: float) -> float:
    """How often a reporter samples its gauges (Ray: min(look-back x 0.2, push interval))."""
    return min(look_back_period_s * RECORD_INTERVAL_FACTOR, metrics_interval_s)


class Reporter:
    """One source of autoscaling metrics: what it recorded, and what it last pushed."""

    __slots__ = ("_look_back", "_store", "pushed")

    def __init__(self, look_back_period_s: float) -> None:
        self._look_back = look_back_period_s
        self._store = metrics_store()
        #: The series the controller holds from this reporter's last push.
        self.pushed: dict[str, Series] = {}

    def record(self, now: float, values: Mapping[str, float]) -> None:
        """Sample the gauges at ``now``."""
        points: dict[Hashable, float] = {}
        points.update(values)
        self._store.add_metrics_point(points, now)

    def push(self, now: float) -> None:
        """Send the look-back window to the controller (Ray prunes before each push)."""
        self._store.prune_keys_and_compact_data(now - self._look_back)
        self.pushed = {str(k): list(v) for k, v in self._store.data.items()}


def window_mean(series: Sequence[Series], now: float) -> float:
    """The controller's MEAN of ``series`` summed as gauges, over the window ending at ``now``.

    The window opens once every series has a point and closes at ``now``,
    the last point being held until then (Ray's rule); 0.0 with no data.
    """
    present = [s for s in series if s]
    if not present:
        return 0.0
    merged = merge_instantaneous_total(present)
    if not merged:
        return 0.0
    last_window_s = now - merged[-1].timestamp
    if last_window_s <= 0:
        last_window_s = 1e-3  # Ray's guard against clock skew
    window_start = None
    if len(present) > 1:
        aligned = max(s[0].timestamp for s in present)
        if aligned <= merged[-1].timestamp:
            window_start = max(aligned, merged[0].timestamp)
    value = aggregate_mean(merged, last_window_s, window_start)
    return float(value) if value is not None else 0.0
