"""Paced stream batching: a chunk as soon as tokens wait, at most one per interval.

Ray Serve LLM's stream batcher (``ray.llm``'s ``Batcher``) wakes on a fixed
clock: every ``interval`` it sends whatever tokens arrived since the last
tick. The first token therefore waits up to a whole interval before it
leaves the replica (it is in the time to first token), and an engine step
that stalls past one tick boundary makes a gap of two intervals in the
stream (it is in the inter-token latency's tail).

:func:`paced` keeps the same bound on the chunk rate, and so on the
per-chunk work downstream (a gRPC message and an HTTP write at each hop),
but starts the interval at the last chunk sent instead of at a tick: a
token that arrives after a quiet interval goes at once, the first token
included, and the end of the stream is flushed the moment it comes.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
from collections.abc import AsyncGenerator, AsyncIterator
from typing import TypeVar

__all__ = ["STREAM_BATCHING_KEY", "paced"]

T = TypeVar("T")

#: The ``LLMConfig.experimental_configs`` key that carries ``models[].stream_batching``
#: to the replica, beside Ray Serve LLM's own ``stream_batching_interval_ms``.
STREAM_BATCHING_KEY = "model_garden.stream_batching"


async def paced(source: AsyncIterator[T], interval_s: float) -> AsyncGenerator[list[T], None]:
    """Yield ``source``'s items in lists, each as soon as ``interval_s`` has passed since the last.

    Contract: every item is yielded exactly once and in order; no list is
    empty; two lists are never yielded less than ``interval_s`` apart
    (wall clock at the yields, on the running loop's clock), except the
    last, which goes as soon as ``source`` ends. An error of ``source`` is
    raised after the items it yielded before it. Closing the returned
    generator cancels the reading of ``source``.
    """
    if interval_s < 0:
        raise ValueError(f"interval_s must be >= 0, got {interval_s!r}")
    loop = asyncio.get_running_loop()
    pending: list[T] = []
    arrived = asyncio.Event()
    finished = asyncio.Event()

    async def read() -> None:
        try:
            async for item in source:
                pending.append(item)
                arrived.set()
        finally:
            finished.set()
            arrived.set()

    reader = asyncio.create_task(read())
    next_at = -math.inf
    try:
        while True:
            await arrived.wait()
            wait = next_at - loop.time()
            if wait > 0 and not finished.is_set():
                # Woken by the end of the source too: the last chunk does not wait.
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(finished.wait(), wait)
            arrived.clear()
            if pending:
                batch = pending[:]
                pending.clear()
                next_at = loop.time() + interval_s
                yield batch
            if finished.is_set() and not pending:
                await reader  # the source's error, if it failed
                return
    finally:
        if not reader.done():
            reader.cancel()
