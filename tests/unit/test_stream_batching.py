"""``models[].stream_batching_interval_ms`` and ``stream_batching`` reach the replica's batcher.

Ray's ``LLMServer`` reads the interval from ``experimental_configs``; if an
upgrade renames the key, the interval Ray uses here stops being the
config's and this fails.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from types import SimpleNamespace

import pytest
from pydantic import ValidationError

from cluster.config import DEFAULT_STREAM_BATCHING_INTERVAL_MS, GardenConfig, load_config
from deployments.model import build_llm_config

pytestmark = pytest.mark.unit


def _with_interval(value: object) -> GardenConfig:
    data = load_config(None).model_dump(mode="json")
    data["models"][0]["stream_batching_interval_ms"] = value
    return GardenConfig.model_validate(data)


def test_the_interval_is_the_one_ray_serve_llm_batches_by() -> None:
    from ray.serve.llm import LLMServer

    garden = _with_interval(7.5)
    first, second = garden.models[0], garden.models[1]
    for spec, expected in ((first, 7.5), (second, DEFAULT_STREAM_BATCHING_INTERVAL_MS)):
        config = build_llm_config(garden, spec)
        server = SimpleNamespace(_llm_config=config)
        assert LLMServer._get_batch_interval_ms(server) == expected


def test_a_negative_interval_names_the_field_and_the_value() -> None:
    with pytest.raises(ValidationError, match="stream_batching_interval_ms") as info:
        _with_interval(-5)
    assert "-5" in str(info.value)


async def _chunks(server: object) -> list[list[int]]:
    async def source() -> AsyncIterator[int]:
        for item in (1, 2, 3):
            await asyncio.sleep(0.01)
            yield item

    return [batch async for batch in server.batch_stream(source())]  # type: ignore[attr-defined]


# LLMServer's __del__ is a coroutine, and this server never started.
@pytest.mark.filterwarnings("ignore:coroutine 'LLMServer.__del__' was never awaited")
@pytest.mark.parametrize(("mode", "expected"), [("paced", [[1], [2, 3]]), ("fixed", [[1, 2, 3]])])
def test_the_replica_cuts_streams_as_stream_batching_says(
    mode: str, expected: list[list[int]]
) -> None:
    """The garden's replica class, on the config it is deployed with, through Ray's hook.

    At a 1 s interval Ray's fixed clock sends all three tokens in one chunk
    after a second; paced sends the first at once and the rest at the end.
    """
    from deployments._server import GardenModel

    data = load_config(None).model_dump(mode="json")
    data["models"][0].update(stream_batching=mode, stream_batching_interval_ms=1000)
    garden = GardenConfig.model_validate(data)
    server = GardenModel.__new__(GardenModel)  # its engine is not needed to cut a stream
    server._llm_config = build_llm_config(garden, garden.models[0])
    # Through the private name Ray's LLMServer._run_request calls.
    assert server._batch_output_stream.__func__ is GardenModel._batch_output_stream  # type: ignore[attr-defined]
    assert asyncio.run(_chunks(server)) == expected


def test_an_unknown_stream_batching_names_the_value() -> None:
    data = load_config(None).model_dump(mode="json")
    data["models"][0]["stream_batching"] = "ticks"
    with pytest.raises(ValidationError, match="stream_batching") as info:
        GardenConfig.model_validate(data)
    assert "ticks" in str(info.value)
