"""Per-key quotas (``router._quota``): the window arithmetic, shared counters, and the limits.

Two :class:`Quotas` over one :class:`MemoryCounters` play two router
replicas sharing the garden's counter store.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import pytest

from cluster.counters import Add, MemoryCounters, Op, Put, Read, Result
from cluster.exceptions import QuotaStoreError, RateLimitError, StoreUnavailableError
from router.quota import (
    ROUTER_LIVE_S,
    Admission,
    KeyLimits,
    Quotas,
    reset_text,
    seconds_until_below,
    sliding_count,
    usage_of_keys,
)
from tests._clock import Clock

pytestmark = pytest.mark.unit


def run(coro):  # type: ignore[no-untyped-def]
    return asyncio.run(coro)


# -- the arithmetic ---------------------------------------------------------------


def test_the_sliding_count_weighs_last_minute_by_what_is_left_of_it() -> None:
    assert sliding_count(10, 4, 0) == 14
    assert sliding_count(10, 4, 30) == 9
    assert sliding_count(10, 4, 60) == 4


def test_the_reset_is_when_the_count_falls_below_the_limit() -> None:
    assert seconds_until_below(0, 3, 5, 10) == 0
    # 10 last minute, 0 now, limit 5, 30 s in: 10 * (1 - (30 + t)/60) < 5 from t = 0.
    assert seconds_until_below(10, 0, 5, 30) == pytest.approx(0)
    # 10 last minute, 2 now, limit 5, 0 s in: 10 * (1 - t/60) + 2 < 5 from t = 42.
    assert seconds_until_below(10, 2, 5, 0) == pytest.approx(42)
    # The current window alone is at the limit: it must slide out in the next one.
    # 5 now at 50 s in, limit 5: 10 s to the window's end, then 5 * (1 - t/60) < 5 at once.
    assert seconds_until_below(0, 5, 5, 50) == pytest.approx(10)
    assert seconds_until_below(0, 10, 5, 50) == pytest.approx(40)
    # Whatever the inputs, waiting that long is enough.
    for prev, cur, limit, elapsed in [(7, 3, 6, 12), (50, 49, 50, 59), (3, 9, 4, 1)]:
        wait = seconds_until_below(prev, cur, limit, elapsed)
        later = elapsed + wait + 1e-9
        if later < 60:
            assert sliding_count(prev, cur, later) < limit
        else:
            assert sliding_count(cur, 0, later - 60) < limit


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(0.02, "20ms"), (0.0, "0ms"), (1.0, "1s"), (1.25, "1.3s"), (59.9, "59.9s"), (360, "6m0s")],
)
def test_resets_are_written_as_openai_writes_them(seconds: float, text: str) -> None:
    assert reset_text(seconds) == text


# -- limits across router replicas -------------------------------------------------


def _pair(
    limits: KeyLimits, clock: Clock, counters: MemoryCounters | None = None
) -> tuple[Quotas, Quotas]:
    shared = counters or MemoryCounters(clock)
    return tuple(  # type: ignore[return-value]
        Quotas("g", {"team": limits}, KeyLimits(), shared, writer, clock=clock)
        for writer in ("router-a", "router-b")
    )


def test_requests_per_minute_are_one_quota_across_two_routers() -> None:
    clock = Clock(6000.0)  # the start of a window
    a, b = _pair(KeyLimits(requests_per_minute=5), clock)
    admitted = refused = 0
    for i in range(10):
        try:
            run((a if i % 2 else b).admit("team"))
            admitted += 1
        except RateLimitError as err:
            refused += 1
            assert err.status_code == 429 and err.code == "rate_limit_exceeded"
            assert err.error_type == "requests"
            assert err.headers["x-ratelimit-remaining-requests"] == "0"
            assert err.retry_after > 0
    assert (admitted, refused) == (5, 5)
    # A refused request took itself back: two windows later the key has its quota again.
    clock.now += 120
    for _ in range(5):
        run(a.admit("team"))


def test_headers_count_down_and_name_the_reset() -> None:
    clock = Clock(6000.0)
    a, _ = _pair(KeyLimits(requests_per_minute=3, tokens_per_minute=100), clock)
    first = run(a.admit("team"))
    assert first.headers["x-ratelimit-limit-requests"] == "3"
    assert first.headers["x-ratelimit-remaining-requests"] == "2"
    assert first.headers["x-ratelimit-limit-tokens"] == "100"
    assert first.headers["x-ratelimit-remaining-tokens"] == "100"
    assert first.headers["x-ratelimit-reset-tokens"] == "0ms"
    assert run(a.admit("team")).headers["x-ratelimit-remaining-requests"] == "1"


def test_a_spent_token_window_refuses_until_it_slides_out() -> None:
    clock = Clock(6000.0)
    a, b = _pair(KeyLimits(tokens_per_minute=100), clock)
    admission = run(a.admit("team"))
    run(a.finish(admission, (60, 50), 0.0))  # 110 tokens: the window is spent
    with pytest.raises(RateLimitError) as refused:
        run(b.admit("team"))  # the other router sees it
    assert refused.value.error_type == "tokens"
    assert refused.value.headers["x-ratelimit-remaining-tokens"] == "0"
    wait = refused.value.retry_after
    assert 0 < wait <= 60 + 60
    clock.now += wait + 0.01
    run(b.admit("team"))


def test_concurrency_counts_every_live_router() -> None:
    clock = Clock(6000.0)
    a, b = _pair(KeyLimits(max_concurrent=2), clock)
    run(a.heartbeat())
    run(b.heartbeat())
    first = run(a.admit("team"))
    run(b.admit("team"))
    with pytest.raises(RateLimitError) as refused:
        run(a.admit("team"))
    assert refused.value.error_type == "concurrency"
    run(a.finish(first, (1, 1), 0.0))  # one ends: a slot is free again
    run(a.admit("team"))


def test_a_dead_routers_requests_stop_counting() -> None:
    clock = Clock(6000.0)
    a, b = _pair(KeyLimits(max_concurrent=1), clock)
    run(b.heartbeat())
    run(b.admit("team"))  # router b dies with it in flight
    with pytest.raises(RateLimitError):
        run(a.admit("team"))
    clock.now += ROUTER_LIVE_S + 0.1
    run(a.heartbeat())
    run(a.admit("team"))


def test_unlimited_keys_skip_the_store_but_count_usage() -> None:
    clock = Clock(6000.0)
    calls: list[Sequence[Op]] = []
    counters = MemoryCounters(clock)

    class Spy:
        async def run(self, ops: Sequence[Op]) -> list[Result]:
            calls.append(ops)
            return counters.apply(ops)

        async def close(self) -> None:
            pass

    quotas = Quotas("g", {}, KeyLimits(), Spy(), "router-a", clock=clock)
    admission = run(quotas.admit("anyone"))
    assert calls == []
    run(quotas.finish(admission, (7, 3), 0.5))
    run(quotas.finish(Admission("anyone"), None, 0.0))
    usage = run(usage_of_keys(counters, "g"))
    assert usage == {
        "anyone": {"requests": 2, "prompt_tokens": 7, "completion_tokens": 3, "spend": 0.5}
    }


class _Down:
    async def run(self, ops: Sequence[Op]) -> list[Result]:
        raise QuotaStoreError("store down")

    async def close(self) -> None:
        pass


def test_a_store_that_is_down_fails_open_or_closed_as_configured() -> None:
    limits = {"team": KeyLimits(requests_per_minute=1)}
    open_ = Quotas("g", limits, KeyLimits(), _Down(), "r", on_error="open")
    assert run(open_.admit("team")).headers == {}  # served, unmetered
    run(open_.finish(Admission("team"), (1, 1), 0.0))  # usage lost, no error
    closed = Quotas("g", limits, KeyLimits(), _Down(), "r", on_error="closed")
    with pytest.raises(StoreUnavailableError) as refused:
        run(closed.admit("team"))
    assert refused.value.status_code == 503 and refused.value.code == "quota_store_unavailable"


def test_allow_lists() -> None:
    limits = KeyLimits(models=frozenset({"auto"}))
    assert limits.allows("auto") and not limits.allows("law")
    assert KeyLimits().allows("law")


# -- the counters -----------------------------------------------------------------


def test_memory_counters_add_put_read_and_expire() -> None:
    clock = Clock(0.0)
    counters = MemoryCounters(clock)
    assert counters.apply([Add("k", "a", 2, 10), Add("k", "a", 3, 10), Put("k", "b", 7, 10)]) == [
        2,
        5,
        7,
    ]
    assert counters.apply([Read("k"), Read("none")]) == [{"a": 5, "b": 7}, {}]
    clock.now += 9
    counters.apply([Add("k", "a", 0, 10)])  # a write renews the key
    clock.now += 9
    assert counters.apply([Read("k")]) == [{"a": 5, "b": 7}]
    clock.now += 2
    assert counters.apply([Read("k")]) == [{}]


def test_a_refused_request_is_told_when_one_more_fits() -> None:
    clock = Clock(6000.0 + 59)  # 59 s into a window
    a, _ = _pair(KeyLimits(requests_per_minute=10), clock)
    for _ in range(10):
        run(a.admit("team"))
    clock.now = 6060.0  # the next window: last minute's 10 weigh fully
    with pytest.raises(RateLimitError) as refused:
        run(a.admit("team"))
    wait = refused.value.retry_after
    assert wait == pytest.approx(6.0)  # 10 * (1 - t/60) <= 9
    clock.now += wait - 0.5
    with pytest.raises(RateLimitError):
        run(a.admit("team"))
    clock.now += 0.51
    run(a.admit("team"))


def test_an_admitted_request_with_none_left_names_when_the_next_fits() -> None:
    clock = Clock(6000.0 + 10)
    a, _ = _pair(KeyLimits(requests_per_minute=2), clock)
    run(a.admit("team"))
    last = run(a.admit("team"))
    assert last.headers["x-ratelimit-remaining-requests"] == "0"
    # 50 s to the window's end, then 2 * (1 - t/60) <= 1 after 30 s more.
    assert last.headers["x-ratelimit-reset-requests"] == "1m20s"


class _AppliedThenFailed:
    """A store that applies a batch, then fails to answer (a timeout after the write)."""

    def __init__(self, counters: MemoryCounters) -> None:
        self.counters = counters
        self.fail = True

    async def run(self, ops: Sequence[Op]) -> list[Result]:
        results = self.counters.apply(ops)
        if self.fail:
            raise QuotaStoreError("timed out")
        return results

    async def close(self) -> None:
        pass


def test_a_store_call_that_failed_after_it_applied_does_not_leak_slots() -> None:
    clock = Clock(6000.0)
    store = _AppliedThenFailed(MemoryCounters(clock))
    quotas = Quotas(
        "g", {"team": KeyLimits(max_concurrent=2)}, KeyLimits(), store, "r", clock=clock
    )
    served = [run(quotas.admit("team")) for _ in range(2)]  # unmetered: failed open
    for admission in served:
        run(quotas.finish(admission, None, 0.0))
    store.fail = False
    # The store saw +1 twice and never the ends; this router's own count (0) wins.
    for _ in range(2):
        run(quotas.admit("team"))
    with pytest.raises(RateLimitError):
        run(quotas.admit("team"))


def test_a_store_that_lost_its_counts_is_put_right_by_the_routers() -> None:
    clock = Clock(6000.0)
    counters = MemoryCounters(clock)
    a, b = _pair(KeyLimits(max_concurrent=2), clock, counters)
    first, second = run(a.admit("team")), run(a.admit("team"))
    counters._hashes.clear()  # the counter actor restarted empty
    run(a.heartbeat())  # router a puts its two in-flight requests back
    with pytest.raises(RateLimitError):
        run(b.admit("team"))
    run(a.finish(first, None, 0.0))
    run(a.finish(second, None, 0.0))
    # Never below zero: exactly two fit again, not four.
    run(b.heartbeat())
    run(b.admit("team"))
    run(a.admit("team"))
    with pytest.raises(RateLimitError):
        run(b.admit("team"))


def test_expired_windows_are_swept_from_memory() -> None:
    clock = Clock(6000.0)
    counters = MemoryCounters(clock)
    quotas = Quotas(
        "g", {"team": KeyLimits(requests_per_minute=100)}, KeyLimits(), counters, "r", clock=clock
    )
    for minute in range(30):
        clock.now = 6000.0 + 60 * minute
        run(quotas.admit("team"))
    assert len(counters) <= 5  # this minute's and last minute's windows, not thirty


def test_one_routers_racing_requests_see_each_other() -> None:
    clock = Clock(6000.0)

    class Slow:
        """A store that answers only after every request has asked (one event-loop turn)."""

        def __init__(self) -> None:
            self.counters = MemoryCounters(clock)

        async def run(self, ops: Sequence[Op]) -> list[Result]:
            await asyncio.sleep(0)
            return self.counters.apply(ops)

        async def close(self) -> None:
            pass

    quotas = Quotas(
        "g", {"team": KeyLimits(max_concurrent=2)}, KeyLimits(), Slow(), "r", clock=clock
    )

    async def burst() -> list[object]:
        async def one() -> object:
            try:
                return await quotas.admit("team")
            except RateLimitError as err:
                return err

        return await asyncio.gather(*(one() for _ in range(6)))

    results = run(burst())
    admitted = [r for r in results if isinstance(r, Admission)]
    assert 1 <= len(admitted) <= 2, results
