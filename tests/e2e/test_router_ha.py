"""Router high availability: a router replica killed under load (issue 15, item 3).

The garden runs two router replicas behind HAProxy by default. Killing one
with ``kill -9`` under load must cost no request that the ``openai``
client's default retries can cover (non-streamed ones, and streams that had
not started); streams already flowing through the dead router cannot be
resumed by a client and are counted. Serve then starts a successor, and the
garden is back at two routers.
"""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass, field

import httpx
import openai
import pytest

from cluster.app import ROUTER_DEPLOYMENT
from cluster.lifecycle import status
from tests._replicas import router_processes
from tests.conftest import RunningGarden

pytestmark = pytest.mark.e2e

_PROMPTS = (
    ("auto", "What is the first-line treatment for type 2 diabetes?"),
    ("auto", "Explain the difference between a list and a tuple in Python."),
    ("generalist", "Tell me about the history of the bicycle."),
    ("finance", "What is a bond's yield to maturity?"),
)


def _routers(garden: RunningGarden) -> tuple[int, int]:
    """The router deployment's running and target replica counts."""
    progress = next(p for p in status(garden.config.name) if p.name == ROUTER_DEPLOYMENT)
    return progress.running, progress.target


def _wait_for_routers(garden: RunningGarden, count: int, timeout_s: float = 180) -> float:
    """Seconds until ``count`` router replicas run (and nothing else is starting)."""
    started = time.monotonic()
    while time.monotonic() - started < timeout_s:
        if _routers(garden) == (count, count):
            return time.monotonic() - started
        time.sleep(0.5)
    pytest.fail(
        f"the garden did not get back to {count} routers in {timeout_s} s: {_routers(garden)}"
    )


@dataclass
class _Tally:
    sent: int = 0
    served: int = 0
    failed: list[str] = field(default_factory=list)
    streams_done: int = 0
    streams_broken: list[str] = field(default_factory=list)
    retries: int = 0


def test_the_garden_runs_two_routers_by_default(garden: RunningGarden) -> None:
    assert garden.config.router.num_replicas == 2
    assert _wait_for_routers(garden, 2) >= 0
    routers = router_processes(garden.config.name)
    assert len(routers) == 2
    # What the second router costs: its resident memory (docs/reliability.md).
    rss = [round(p.memory_info().rss / 2**20) for p in routers]
    print(json.dumps({"router_rss_mib": rss}))


def test_a_killed_router_costs_no_retried_request(garden: RunningGarden) -> None:
    """kill -9 one of two routers while 6 clients send requests and 8 long streams flow.

    With the ``openai`` client's default retries (2), every non-streamed
    request is answered; every stream either finishes or is counted as
    broken (it was flowing through the dead router). The garden returns to
    two routers.
    """
    _wait_for_routers(garden, 2)
    tally = _Tally()

    async def count_retries(request: httpx.Request) -> None:
        if request.headers.get("x-stainless-retry-count", "0") != "0":
            tally.retries += 1

    # Default retries, as a user's client has them.
    client = openai.AsyncOpenAI(
        base_url=garden.endpoint,
        api_key="unused",
        timeout=120,
        http_client=httpx.AsyncClient(event_hooks={"request": [count_retries]}),
    )

    async def requester(worker: int, stop: asyncio.Event) -> None:
        i = worker
        while not stop.is_set():
            model, prompt = _PROMPTS[i % len(_PROMPTS)]
            i += 1
            tally.sent += 1
            try:
                reply = await client.chat.completions.create(
                    model=model, messages=[{"role": "user", "content": prompt}], max_tokens=16
                )
            except openai.OpenAIError as err:
                tally.failed.append(f"{type(err).__name__}: {err}")
                continue
            assert reply.choices, reply
            tally.served += 1

    flowing = asyncio.Semaphore(0)

    async def streamer() -> None:
        try:
            stream = await client.chat.completions.create(
                model="generalist",
                messages=[{"role": "user", "content": "Write a long story about a lighthouse."}],
                max_tokens=1500,
                stream=True,
                extra_body={"ignore_eos": True},
            )
            chunks = 0
            async for _ in stream:
                chunks += 1
                if chunks == 2:
                    flowing.release()
        except (openai.OpenAIError, httpx.HTTPError) as err:  # a cut stream: httpx's own
            tally.streams_broken.append(f"{type(err).__name__}: {err}")
        else:
            tally.streams_done += 1

    async def scenario() -> float:
        stop = asyncio.Event()
        workers = [asyncio.create_task(requester(w, stop)) for w in range(6)]
        streams = [asyncio.create_task(streamer()) for _ in range(8)]
        try:
            for _ in streams:  # every stream is flowing, none is near its end
                await asyncio.wait_for(flowing.acquire(), 120)
            await asyncio.sleep(2)
            assert not any(s.done() for s in streams)
            victim = router_processes(garden.config.name)[0]
            await asyncio.to_thread(victim.kill)
            killed_at = time.monotonic()
            await asyncio.sleep(12)  # load goes on across the kill
            stop.set()
            await asyncio.gather(*workers, *streams)
            return killed_at
        finally:
            stop.set()
            await client.close()

    killed_at = asyncio.run(scenario())
    recovered_s = _wait_for_routers(garden, 2) + (time.monotonic() - killed_at)
    print(
        json.dumps(
            {
                "sent": tally.sent,
                "served": tally.served,
                "failed": len(tally.failed),
                "streams": 8,
                "streams_done": tally.streams_done,
                "streams_broken": len(tally.streams_broken),
                "retried_requests": tally.retries,
                "two_routers_again_after_s": round(recovered_s, 1),
            }
        )
    )
    assert not tally.failed, tally.failed[:5]
    assert tally.served == tally.sent > 20
    assert tally.streams_done + len(tally.streams_broken) == 8
