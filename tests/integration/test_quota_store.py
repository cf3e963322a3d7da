"""The quota counters on their real stores: the garden's Ray actor, and a real Redis.

Each store runs the same checks: two router replicas (two :class:`Quotas`
with distinct writers) share one requests-per-minute quota and one
concurrency limit, and a batch is atomic under concurrent admissions. Redis
is Debian's ``redis-server`` (``make services`` installs it), started here
on a free port and stopped after; a Redis that dies fails open or closed as
configured.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator

import pytest

from cluster.counters import ActorCounters, Counters, RedisCounters, end_counter_actor
from cluster.exceptions import RateLimitError, StoreUnavailableError
from router.quota import KeyLimits, Quotas, usage_of_keys
from tests._redis import free_port, redis_server
from tests.conftest import RunningGarden

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def redis_url() -> Iterator[str]:
    """A redis-server of its own on a free port, without persistence; stopped after."""
    with redis_server() as url:
        yield url


async def _shared_quota(counters: Counters, app: str) -> None:
    limits = {"team": KeyLimits(requests_per_minute=8, max_concurrent=3)}
    a, b = (Quotas(app, limits, KeyLimits(), counters, w) for w in ("router-a", "router-b"))
    await a.heartbeat()
    await b.heartbeat()

    async def try_admit(quotas: Quotas) -> object:
        try:
            return await quotas.admit("team")
        except RateLimitError as err:
            return err.error_type

    # Twelve admissions at once, half through each router: concurrency caps them at 3.
    routers = [(a, b)[i % 2] for i in range(12)]
    results = await asyncio.gather(*(try_admit(r) for r in routers))
    admitted = [(r, o) for r, o in zip(routers, results, strict=True) if not isinstance(o, str)]
    assert 1 <= len(admitted) <= 3, results
    assert set(o for o in results if isinstance(o, str)) <= {"concurrency", "requests"}
    for router, admission in admitted:  # each ends at the router that admitted it
        await router.finish(admission, (10, 5), 0.25)  # type: ignore[arg-type]
    # The refused ones took themselves back: 8 - len(admitted) requests remain this minute.
    left = 0
    while True:
        router = (a, b)[left % 2]
        try:
            done = await router.admit("team")
        except RateLimitError as err:
            assert err.error_type == "requests"
            break
        left += 1
        # Ended where it was admitted: in-flight counts are each router's own.
        await router.finish(done, None, 0.0)
    assert len(admitted) + left == 8
    usage = await usage_of_keys(counters, app)
    assert usage["team"]["requests"] == 8
    assert usage["team"]["prompt_tokens"] == 10 * len(admitted)


def test_the_garden_actor_shares_one_quota_between_two_routers(garden: RunningGarden) -> None:
    app = f"quota-probe-{uuid.uuid4().hex[:8]}"
    counters = ActorCounters(app, timeout_s=10)
    try:
        asyncio.run(_shared_quota(counters, app))
        # The counts live in the actor, not in a router: another handle sees them.
        usage = asyncio.run(usage_of_keys(ActorCounters(app, timeout_s=10), app))
        assert usage["team"]["requests"] == 8
    finally:
        assert end_counter_actor(app)
    assert not end_counter_actor(app)


def test_redis_shares_one_quota_between_two_routers(redis_url: str) -> None:
    app = f"quota-probe-{uuid.uuid4().hex[:8]}"

    async def scenario() -> None:
        counters = RedisCounters(redis_url, f"model_garden:{app}:")
        try:
            await _shared_quota(counters, app)
        finally:
            await counters.close()

    asyncio.run(scenario())


def test_a_redis_that_is_gone_fails_open_or_closed() -> None:
    url = f"redis://127.0.0.1:{free_port()}/0"  # nothing listens there
    limits = {"team": KeyLimits(requests_per_minute=1)}

    async def scenario() -> None:
        for on_error in ("open", "closed"):
            counters = RedisCounters(url, "model_garden:gone:", timeout_s=0.2)
            quotas = Quotas("gone", limits, KeyLimits(), counters, "r", on_error=on_error)
            try:
                if on_error == "open":
                    await quotas.admit("team")
                    await quotas.admit("team")  # unmetered: over the limit, still served
                else:
                    with pytest.raises(StoreUnavailableError):
                        await quotas.admit("team")
            finally:
                await counters.close()

    asyncio.run(scenario())
