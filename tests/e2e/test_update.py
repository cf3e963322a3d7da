"""Updates under load (issue 15, item 9): ``garden up`` again on the running garden.

One model's engine config changes (``code``'s ``max_num_seqs``), and ``up``
is called again with the new config while clients send requests: Ray Serve
replaces ``code``'s replicas and, since the router's arguments hold the
config, the two routers one at a time, each draining its requests first.
The other models keep their replicas: each deployment's code version is a
hash of what it runs (``cluster.app.code_version``).
With the ``openai`` client's default retries no request fails. The test
then puts the original config back the same way.
"""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass, field

import httpx
import openai
import pytest

from cluster.config import GardenConfig
from cluster.lifecycle import status, up
from tests._replicas import replica_processes
from tests.conftest import TEST_API_KEY, RunningGarden

pytestmark = pytest.mark.e2e

_REQUESTS = (
    ("auto", "Explain the difference between a list and a tuple in Python."),
    ("code", "Write a function that reverses a string."),
    ("auto", "What is the first-line treatment for type 2 diabetes?"),
    ("generalist", "Tell me about the history of the bicycle."),
)


def _changed(garden: GardenConfig, max_num_seqs: int) -> GardenConfig:
    data = garden.model_dump(mode="json")
    code = next(m for m in data["models"] if m["name"] == "code")
    code["engine"] = {**code["engine"], "max_num_seqs": max_num_seqs}
    return GardenConfig.model_validate(data)


@dataclass
class _Tally:
    sent: int = 0
    served: int = 0
    retried: int = 0
    failed: list[str] = field(default_factory=list)
    streams: int = 0
    streams_failed: list[str] = field(default_factory=list)


def _update_under_load(garden: GardenConfig, endpoint: str, tally: _Tally) -> float:
    """Run ``up(garden)`` while 4 clients send requests and streams; seconds the update took."""

    async def count_retries(request: httpx.Request) -> None:
        if request.headers.get("x-stainless-retry-count", "0") != "0":
            tally.retried += 1

    client = openai.AsyncOpenAI(
        base_url=endpoint,
        api_key=TEST_API_KEY,
        timeout=180,
        http_client=httpx.AsyncClient(event_hooks={"request": [count_retries]}),
    )

    async def requester(worker: int, stop: asyncio.Event) -> None:
        i = worker
        while not stop.is_set():
            model, prompt = _REQUESTS[i % len(_REQUESTS)]
            i += 1
            tally.sent += 1
            try:
                if i % 5 == 0:
                    stream = await client.chat.completions.create(
                        model=model,
                        messages=[{"role": "user", "content": prompt}],
                        max_tokens=48,
                        stream=True,
                    )
                    async for _ in stream:
                        pass
                    tally.streams += 1
                else:
                    await client.chat.completions.create(
                        model=model, messages=[{"role": "user", "content": prompt}], max_tokens=8
                    )
            except (openai.OpenAIError, httpx.HTTPError) as err:
                (tally.streams_failed if i % 5 == 0 else tally.failed).append(repr(err)[:300])
                continue
            tally.served += 1

    async def scenario() -> float:
        stop = asyncio.Event()
        workers = [asyncio.create_task(requester(w, stop)) for w in range(4)]
        try:
            await asyncio.sleep(3)
            started = time.monotonic()
            await asyncio.to_thread(up, garden, timeout_s=600)
            took = time.monotonic() - started
            await asyncio.sleep(3)
            return took
        finally:
            stop.set()
            await asyncio.gather(*workers)
            await client.close()

    return asyncio.run(scenario())


def test_an_update_under_load_loses_no_request(garden: RunningGarden) -> None:
    before = garden.config.model("code").engine["max_num_seqs"]
    assert isinstance(before, int)
    old_pids = {p.pid for p in replica_processes(garden.config.name, "code")}
    kept = {p.pid for p in replica_processes(garden.config.name, "generalist")}
    tally = _Tally()
    try:
        took = _update_under_load(_changed(garden.config, before - 1), garden.endpoint, tally)
        new_pids = {p.pid for p in replica_processes(garden.config.name, "code")}
        untouched = {p.pid for p in replica_processes(garden.config.name, "generalist")}
    finally:
        restored = _Tally()
        _update_under_load(garden.config, garden.endpoint, restored)
    print(
        json.dumps(
            {
                "update_s": round(took, 1),
                "sent": tally.sent,
                "served": tally.served,
                "failed": len(tally.failed),
                "streams": tally.streams,
                "streams_failed": len(tally.streams_failed),
                "retried": tally.retried,
                "restore": {"sent": restored.sent, "failed": len(restored.failed)},
            }
        )
    )
    assert not tally.failed and not tally.streams_failed, (tally.failed + tally.streams_failed)[:5]
    assert not restored.failed and not restored.streams_failed
    assert tally.served == tally.sent > 20
    assert old_pids and new_pids and not old_pids & new_pids  # code's replicas were replaced
    assert kept and untouched == kept  # a model whose config did not change kept its replicas
    progress = {p.name: p for p in status(garden.config.name)}
    assert progress["code"].healthy and progress["router"].running == 2
