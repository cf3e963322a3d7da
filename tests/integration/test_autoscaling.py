"""Ray Serve's controller calls the garden policy: load scales a specialist 1 → 2 → 1."""

from __future__ import annotations

import asyncio
import time

import openai
import pytest

from cluster.lifecycle import status
from tests.conftest import TEST_API_KEY, RunningGarden

pytestmark = pytest.mark.integration


def _replicas(app: str, model: str) -> tuple[int, int]:
    progress = next(p for p in status(app) if p.name == model)
    return progress.running, progress.target


def _wait_for(app: str, model: str, running: int, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    seen = _replicas(app, model)
    while time.monotonic() < deadline:
        seen = _replicas(app, model)
        if seen == (running, running):
            return
        time.sleep(1)
    pytest.fail(f"{model} did not settle at {running} replicas in {timeout_s} s (saw {seen})")


def test_load_scales_a_specialist_up_and_back_down(garden: RunningGarden) -> None:
    app, model = garden.config.name, "code"
    spec = garden.config.model(model)
    assert _replicas(app, model) == (spec.autoscaling.min_replicas,) * 2
    # Twice the replica's target_ongoing_requests, all running long: the policy wants 2 replicas.
    streams = int(2 * spec.autoscaling.target_ongoing_requests)
    stop = asyncio.Event()

    async def one_stream(client: openai.AsyncOpenAI) -> None:
        while not stop.is_set():
            stream = await client.completions.create(
                model=model,
                prompt="def fibonacci(n):",
                max_tokens=1500,
                stream=True,
                extra_body={"ignore_eos": True},
            )
            async for _ in stream:
                if stop.is_set():
                    break
            await stream.close()

    async def load() -> None:
        client = openai.AsyncOpenAI(base_url=garden.endpoint, api_key=TEST_API_KEY, max_retries=0)
        tasks = [asyncio.create_task(one_stream(client)) for _ in range(streams)]
        try:
            await asyncio.to_thread(_wait_for, app, model, 2, 300)
        finally:
            stop.set()
            await asyncio.gather(*tasks, return_exceptions=True)
            await client.close()

    asyncio.run(load())
    # Idle again: after the downscale delay the policy returns to min_replicas.
    _wait_for(app, model, spec.autoscaling.min_replicas, 180)
