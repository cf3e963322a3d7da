"""The engine's load as Ray Serve's autoscaler sees it: KV-cache use and batch.

vLLM reports scheduler statistics to stat loggers after every engine step.
:class:`LoadProbe` is one such logger that just keeps the latest figures, so
the replica's ``record_autoscaling_stats`` can hand them to Serve as custom
autoscaling metrics (``autoscaling.policy.KV_USAGE_METRIC``).
"""

from __future__ import annotations

import logging
from typing import Any

from vllm.v1.metrics.loggers import AggregateStatLoggerBase

__all__ = ["LoadProbe", "attach_probe"]

logger = logging.getLogger("ray.serve")


class LoadProbe(AggregateStatLoggerBase):
    """The latest scheduler stats of one engine (all data-parallel ranks summed)."""

    def __init__(self, vllm_config: Any = None, engine_indexes: list[int] | None = None) -> None:
        self.kv_usage: float | None = None
        self.running = 0
        self.waiting = 0

    def record(
        self,
        scheduler_stats: Any,
        iteration_stats: Any,
        mm_cache_stats: Any = None,
        engine_idx: int = 0,
    ) -> None:
        if scheduler_stats is None:
            return
        self.kv_usage = float(scheduler_stats.kv_cache_usage)
        self.running = int(scheduler_stats.num_running_reqs)
        self.waiting = int(scheduler_stats.num_waiting_reqs)

    def log_engine_initialized(self) -> None:
        pass


def attach_probe(engine_client: Any) -> LoadProbe | None:
    """A probe fed by ``engine_client`` (an ``AsyncLLM``), or None when it logs no stats."""
    manager = getattr(engine_client, "logger_manager", None)
    if manager is None:
        logger.info("engine logs no stats (disable_log_stats); no KV-cache autoscaling signal")
        return None
    probe = LoadProbe()
    manager.stat_loggers.append(probe)
    return probe
