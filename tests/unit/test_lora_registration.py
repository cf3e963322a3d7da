"""Two first requests for one LoRA adapter: both are served (HookedEngine.resolve_lora).

Ray Serve LLM's ``VLLMEngine.resolve_lora`` checks whether vLLM has the
adapter, then registers it; vLLM refuses a second registration of a name.
The stand-in below behaves so, with the await in between where the race is.
"""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any

import pytest

from deployments._internals import HookedEngine, VLLMEngine

pytestmark = pytest.mark.unit


def _racy_registry(monkeypatch: pytest.MonkeyPatch) -> dict[str, int]:
    registered: dict[str, int] = {}

    async def resolve_lora(self: Any, disk_lora_model: Any) -> None:
        name = disk_lora_model.model_id
        if name in registered:
            return
        await asyncio.sleep(0.01)  # vLLM loads the weights
        if name in registered:
            raise ValueError(f"Failed to load lora model: {name!r} has already been loaded")
        registered[name] = len(registered)

    monkeypatch.setattr(VLLMEngine, "resolve_lora", resolve_lora)
    return registered


async def _both(engine: Any) -> list[Any]:
    adapter = SimpleNamespace(model_id="tax")
    return await asyncio.gather(
        engine.resolve_lora(adapter), engine.resolve_lora(adapter), return_exceptions=True
    )


def test_concurrent_first_requests_for_an_adapter_both_succeed(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    registered = _racy_registry(monkeypatch)
    engine = HookedEngine.__new__(HookedEngine)  # no vLLM engine: only the registration runs
    assert asyncio.run(_both(engine)) == [None, None]
    assert registered == {"tax": 0}


def test_the_stand_in_has_the_race_without_the_lock(monkeypatch: pytest.MonkeyPatch) -> None:
    _racy_registry(monkeypatch)
    engine = VLLMEngine.__new__(VLLMEngine)
    results = asyncio.run(_both(engine))
    assert results[0] is None and isinstance(results[1], ValueError)
