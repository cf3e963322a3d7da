"""``deployments._pacing.paced``: the garden's stream batching, against its contract.

Ray Serve LLM's fixed-clock batcher holds the first token for a whole
interval; the paced one sends it at once. The timing checks use intervals
far longer than the work they wait on (seconds against milliseconds), so a
loaded machine cannot make them pass or fail by chance.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator

import pytest

from deployments._pacing import paced

pytestmark = pytest.mark.unit


async def _source(items: list[object], gap_s: float = 0.0) -> AsyncIterator[object]:
    for item in items:
        if gap_s:
            await asyncio.sleep(gap_s)
        yield item


async def _collect(stream: AsyncIterator[list[object]]) -> list[list[object]]:
    return [batch async for batch in stream]


def test_the_first_item_and_the_end_never_wait_for_the_interval() -> None:
    async def run() -> list[list[object]]:
        # A 60 s interval: a fixed clock would hold each chunk a minute.
        # Items 10 ms apart: the first goes alone, the rest at the source's end.
        stream = paced(_source([1, 2, 3], gap_s=0.01), 60.0)
        return await asyncio.wait_for(_collect(stream), 10.0)

    assert asyncio.run(run()) == [[1], [2, 3]]


def test_items_within_an_interval_are_gathered_into_one_chunk() -> None:
    async def run() -> list[list[object]]:
        async def source() -> AsyncIterator[object]:
            yield "a"
            await asyncio.sleep(0.05)  # inside the 60 s interval after "a" went
            for item in "bcd":
                yield item

        return await asyncio.wait_for(_collect(paced(source(), 60.0)), 10.0)

    assert asyncio.run(run()) == [["a"], ["b", "c", "d"]]


def test_chunks_are_never_closer_than_the_interval() -> None:
    interval = 0.05

    async def run() -> tuple[list[list[object]], list[float]]:
        loop = asyncio.get_running_loop()
        batches, stamps = [], []
        async for batch in paced(_source(list(range(30)), gap_s=0.005), interval):
            batches.append(batch)
            stamps.append(loop.time())
        return batches, stamps

    batches, stamps = asyncio.run(run())
    assert [item for batch in batches for item in batch] == list(range(30))
    gaps = [b - a for a, b in itertools.pairwise(stamps[:-1])]  # the last chunk flushes
    assert gaps and min(gaps) >= interval - 1e-3
    assert len(batches) < 30  # gathered, not one chunk per item


def test_an_error_of_the_source_comes_after_what_it_yielded() -> None:
    async def failing() -> AsyncIterator[object]:
        yield 1
        raise RuntimeError("engine died")

    async def run() -> list[object]:
        seen: list[object] = []
        with pytest.raises(RuntimeError, match="engine died"):
            async for batch in paced(failing(), 60.0):
                seen.extend(batch)
        return seen

    assert asyncio.run(run()) == [1]


def test_closing_the_stream_stops_reading_the_source() -> None:
    async def run() -> bool:
        stopped = asyncio.Event()

        async def endless() -> AsyncIterator[object]:
            try:
                while True:
                    await asyncio.sleep(0.001)
                    yield 0
            finally:
                stopped.set()

        stream = paced(endless(), 0.01)
        await anext(stream)
        await stream.aclose()  # type: ignore[attr-defined]
        await asyncio.wait_for(stopped.wait(), 5.0)
        return stopped.is_set()

    assert asyncio.run(run())


def test_a_negative_interval_is_refused_with_its_value() -> None:
    async def run() -> None:
        await anext(paced(_source([1]), -1.0))

    with pytest.raises(ValueError, match=r"-1\.0"):
        asyncio.run(run())
