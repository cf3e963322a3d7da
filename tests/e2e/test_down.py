"""``garden down`` drains (issue 15, item 9): streams in flight finish before engines die.

Marked ``garden_down``: it runs last and takes the session garden down
itself; the session fixture's teardown then finds nothing left to stop
and checks that no process survived.
"""

from __future__ import annotations

import asyncio
import json
import time

import openai
import pytest

from cluster.lifecycle import down
from tests.conftest import TEST_API_KEY, RunningGarden

pytestmark = [pytest.mark.e2e, pytest.mark.garden_down]


def test_garden_down_lets_the_streams_in_flight_finish(garden: RunningGarden) -> None:
    streams_n = 6

    async def scenario() -> tuple[list[object], list[int], float]:
        client = openai.AsyncOpenAI(
            base_url=garden.endpoint, api_key=TEST_API_KEY, max_retries=0, timeout=120
        )
        started = asyncio.Semaphore(0)

        async def one() -> object:
            try:
                stream = await client.chat.completions.create(
                    model="generalist",
                    messages=[{"role": "user", "content": "Tell me a long story."}],
                    max_tokens=120,
                    stream=True,
                    extra_body={"ignore_eos": True},
                )
                finish = None
                first = True
                async for chunk in stream:
                    if first:
                        started.release()
                        first = False
                    if chunk.choices and chunk.choices[0].finish_reason:
                        finish = chunk.choices[0].finish_reason
                return finish
            except (openai.OpenAIError, OSError) as err:
                return err

        tasks = [asyncio.create_task(one()) for _ in range(streams_n)]
        try:
            for _ in tasks:
                await asyncio.wait_for(started.acquire(), 120)
            at = time.monotonic()
            survivors = await asyncio.to_thread(down, drain_s=60)
            took = time.monotonic() - at
            return list(await asyncio.gather(*tasks)), survivors, took
        finally:
            await client.close()

    endings, survivors, took = asyncio.run(scenario())
    print(json.dumps({"streams": streams_n, "endings": [repr(e) for e in endings], "down_s": took}))
    assert survivors == []
    assert endings == ["length"] * streams_n  # each ran to its max_tokens, none was cut
