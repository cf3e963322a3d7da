"""``models[].stream_batching_interval_ms`` reaches Ray Serve LLM's own stream batcher.

Ray's ``LLMServer`` reads the interval from ``experimental_configs``; if an
upgrade renames the key, the interval Ray uses here stops being the
config's and this fails.
"""

from __future__ import annotations

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
