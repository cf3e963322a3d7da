"""The engine's load as Ray Serve's autoscaler sees it: prompt work, batch and KV cache.

vLLM reports scheduler statistics to stat loggers after every engine step.
:class:`LoadProbe` is one such logger that just keeps the latest figures, so
the replica's ``record_autoscaling_stats`` can hand them to Serve as custom
autoscaling metrics (``autoscaling.metrics``). vLLM counts no waiting prompt
tokens, so the probe also wraps the engine client's ``generate`` (the one
call every OpenAI request goes through) and meters each request's prompt
from its arrival to its first output (:class:`~autoscaling.metrics.WorkMeter`).
"""

from __future__ import annotations

import functools
import logging
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

from autoscaling.metrics import WorkMeter
from deployments._internals import AggregateStatLoggerBase, add_stat_logger

__all__ = ["LoadProbe", "attach_probe", "metered", "prompt_tokens"]

logger = logging.getLogger("ray.serve")


class LoadProbe(AggregateStatLoggerBase):
    """The latest scheduler stats of one engine (all data-parallel ranks summed)."""

    def __init__(self, vllm_config: Any = None, engine_indexes: list[int] | None = None) -> None:
        self.kv_usage: float | None = None
        self.running = 0
        self.waiting = 0
        self.meter = WorkMeter(time.monotonic())

    def stats(self) -> dict[str, float]:
        """The replica's custom autoscaling metrics now."""
        running = float(self.running) if self.kv_usage is not None else None
        return self.meter.stats(time.monotonic(), running, self.kv_usage)

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


def prompt_tokens(prompt: Any) -> int | None:
    """Token count of a prompt as the serving layer hands it to ``generate`` (None: unknown)."""
    ids = prompt.get("prompt_token_ids") if isinstance(prompt, dict) else None
    if ids is None:
        ids = getattr(prompt, "prompt_token_ids", None)
    return None if ids is None else len(ids)


def metered(generate: Callable[..., AsyncIterator[Any]], meter: WorkMeter) -> Any:
    """``generate`` that counts each request's prompt as waiting until its first output."""

    @functools.wraps(generate)
    async def wrapped(prompt: Any, *args: Any, **kwargs: Any) -> AsyncIterator[Any]:
        tokens = prompt_tokens(prompt)
        if tokens is not None:
            meter.arrived(tokens)
        waiting = True
        try:
            async for output in generate(prompt, *args, **kwargs):
                if waiting:
                    waiting = False
                    if tokens is None:  # learnt only now, from the engine's own count
                        tokens = len(getattr(output, "prompt_token_ids", None) or ())
                        meter.arrived(tokens)
                    meter.prefilled(tokens)
                yield output
        finally:
            if waiting and tokens is not None:
                meter.prefilled(tokens)  # aborted or failed before its first token

    return wrapped


def attach_probe(engine_client: Any) -> LoadProbe:
    """A probe fed by ``engine_client`` (an ``AsyncLLM``): its stats and its ``generate``.

    Without stat logging (``disable_log_stats``) the probe meters prompt work
    only, with no batch or KV-cache figures.
    """
    probe = LoadProbe()
    if not add_stat_logger(engine_client, probe):
        logger.info("engine logs no stats (disable_log_stats); no KV-cache autoscaling signal")
    engine_client.generate = metered(engine_client.generate, probe.meter)
    return probe
