"""Per-key limits and usage (``router.auth``): what LiteLLM's keys and OpenAI's rate limits do.

Each API key may have requests and tokens per minute, a concurrency limit
and a model allow-list. Requests and tokens are counted in sliding windows:
the count is this minute's fixed window plus last minute's weighted by the
part of it still inside the last 60 s (Cloudflare's and redis-cell's
approximation, exact for steady traffic, never more than one window's worth
off at a burst). Counters live in :mod:`cluster.counters`, shared by every
router replica, so N replicas give each key one quota, not N.

A request is admitted in one round trip: it adds itself to its key's
request window (and to this router's in-flight field of the key) and reads
the rest; if that puts the key over a limit, a second round trip takes the
additions back and the request gets a 429. Two requests racing for the last
slot may both be refused, never both admitted. Tokens are known only from
an answer's usage, so they are added when it ends, and a request is refused
only while the key's window is already spent.

Concurrency sums each router replica's in-flight field of the key over the
replicas that are alive (each puts a heartbeat every second), so a dead
router's requests stop counting within :data:`ROUTER_LIVE_S`.

Usage (requests, prompt and completion tokens, spend at the models'
``cost_per_hour``) is kept per key for ``garden keys usage``.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from autoscaling.profile import TokenPrice
from cluster.config import GardenConfig, KeyLimitsSpec
from cluster.counters import Add, Counters, Op, Put, Read, Result, counters_for
from cluster.exceptions import QuotaStoreError, RateLimitError, StoreUnavailableError

__all__ = [
    "ROUTER_LIVE_S",
    "WINDOW_S",
    "Admission",
    "KeyLimits",
    "Quotas",
    "quotas_for",
    "reset_text",
    "seconds_until_at_most",
    "seconds_until_below",
    "sliding_count",
    "spend_of",
    "usage_of_keys",
]

logger = logging.getLogger("ray.serve")

#: The rate limits' window: per minute, as OpenAI's RPM and TPM.
WINDOW_S = 60.0
#: A window lives through the next one (where it is "last minute"), then lapses.
_WINDOW_TTL_S = 2 * WINDOW_S + 5
#: A router replica whose heartbeat is older than this no longer counts as in flight.
ROUTER_LIVE_S = 5.0
#: How long the routers' heartbeats outlive the last one.
_ROUTERS_TTL_S = 3600.0
#: How long a key's in-flight fields outlive their last change.
_INFLIGHT_TTL_S = 86_400.0
#: Usage totals are kept this long after a key's last request.
_USAGE_TTL_S = 400 * 86_400.0
_USAGE_FIELDS = ("requests", "prompt_tokens", "completion_tokens", "spend")


@dataclass(frozen=True, slots=True)
class KeyLimits:
    """One key's limits (None: unlimited)."""

    requests_per_minute: int | None = None
    tokens_per_minute: int | None = None
    max_concurrent: int | None = None
    models: frozenset[str] | None = None

    @classmethod
    def of(cls, spec: KeyLimitsSpec) -> KeyLimits:
        """The limits a config node gives."""
        return cls(
            spec.requests_per_minute,
            spec.tokens_per_minute,
            spec.max_concurrent,
            None if spec.models is None else frozenset(spec.models),
        )

    @property
    def metered(self) -> bool:
        """True when admitting a request needs the shared counters."""
        return (
            self.requests_per_minute is not None
            or self.tokens_per_minute is not None
            or self.max_concurrent is not None
        )

    def allows(self, model: str) -> bool:
        """True when the key may use model id ``model``."""
        return self.models is None or model in self.models


def sliding_count(previous: float, current: float, elapsed_s: float) -> float:
    """The count over the last :data:`WINDOW_S` seconds, ``elapsed_s`` into the current window."""
    weight = max(0.0, 1.0 - elapsed_s / WINDOW_S)
    return previous * weight + current


def seconds_until_below(previous: float, current: float, limit: float, elapsed_s: float) -> float:
    """Seconds until the sliding count is below ``limit`` again (0 when it is now).

    Within the current window the count falls as the previous window slides
    out; if the current window alone reaches ``limit``, it must itself slide
    out, in the next window.
    """
    if sliding_count(previous, current, elapsed_s) < limit:
        return 0.0
    return _slide_out(previous, current, limit, elapsed_s, within=current < limit)


def seconds_until_at_most(
    previous: float, current: float, allowed: float, elapsed_s: float
) -> float:
    """Seconds until the sliding count is at most ``allowed`` (0 when it is now)."""
    if sliding_count(previous, current, elapsed_s) <= allowed:
        return 0.0
    return _slide_out(previous, current, allowed, elapsed_s, within=current <= allowed)


def _slide_out(
    previous: float, current: float, level: float, elapsed_s: float, *, within: bool
) -> float:
    """When the sliding count, now past ``level``, gets back to it.

    ``within``: the current window alone is not past it, so the previous
    window (which then holds something) sliding out is enough.
    """
    left = WINDOW_S - elapsed_s
    if within:
        # previous * (1 - (elapsed + t) / W) + current = level, with previous > 0.
        return max(0.0, left - WINDOW_S * (level - current) / previous)
    # Next window: current * (1 - t' / W) = level.
    return left + WINDOW_S * (1.0 - level / current)


def reset_text(seconds: float) -> str:
    """A duration as OpenAI writes ``x-ratelimit-reset-*``: ``20ms``, ``1.5s``, ``6m0s``."""
    if seconds < 1:
        return f"{max(0, math.ceil(seconds * 1000))}ms"
    if seconds < 60:
        return f"{math.ceil(seconds * 10) / 10:g}s"
    minutes, rest = divmod(math.ceil(seconds), 60)
    return f"{minutes}m{rest}s"


@dataclass(slots=True)
class Admission:
    """An admitted request of ``key``: what to answer with, and what to take back at its end."""

    key: str
    headers: dict[str, str] = field(default_factory=dict)
    inflight: bool = False  # it counts in this router's in-flight requests of the key


class Quotas:
    """The limits and usage of every key of garden ``app``, for router replica ``writer``.

    ``limits`` maps a key name to its limits; other names get ``default``.
    ``on_error`` is ``router.auth.store.on_error``: with ``open`` a request
    the store cannot meter is served (and logged), with ``closed`` it gets a
    503. ``clock`` is wall time (several processes share the windows).

    This router's in-flight requests per key are counted here, and the store
    holds a copy that each admission, each end and each :meth:`heartbeat`
    overwrites (a put, not an increment): a store call that timed out after
    it was applied, a lost end or a store that lost its state is corrected
    at the next write instead of drifting for good.
    """

    def __init__(
        self,
        app: str,
        limits: Mapping[str, KeyLimits],
        default: KeyLimits,
        counters: Counters,
        writer: str,
        *,
        on_error: str = "open",
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._app = app
        self._limits = dict(limits)
        self._default = default
        self._counters = counters
        self._writer = writer
        self._closed = on_error == "closed"
        self._clock = clock
        #: This router's requests in flight per concurrency-limited key.
        self._inflight: dict[str, int] = {}

    def limits_of(self, key: str) -> KeyLimits:
        """The limits of key ``key``."""
        return self._limits.get(key, self._default)

    @property
    def concurrency_limited(self) -> bool:
        """True when some key has a concurrency limit (routers must then send heartbeats)."""
        keys = [*self._limits.values(), self._default]
        return any(k.max_concurrent is not None for k in keys)

    def _key(self, *parts: object) -> str:
        return ":".join((self._app, "quota", *map(str, parts)))

    def _own(self, key: str, running: int) -> Put:
        """This router's in-flight count of ``key``, as the store should hold it."""
        return Put(self._key(key, "inflight"), self._writer, running, _INFLIGHT_TTL_S)

    async def admit(self, key: str) -> Admission:
        """Count one request of ``key``, or raise :class:`RateLimitError` (429) if over a limit.

        Raises :class:`StoreUnavailableError` (503) when the store fails and
        ``on_error`` is closed.
        """
        limits = self.limits_of(key)
        if not limits.metered:
            return Admission(key)
        now = self._clock()
        window = int(now // WINDOW_S)
        elapsed = now - window * WINDOW_S
        requests = self._key(key, "requests", window)
        ops: list[Op] = [
            Add(requests, "n", 1, _WINDOW_TTL_S),
            Read(self._key(key, "requests", window - 1)),
            Read(self._key(key, "tokens", window)),
            Read(self._key(key, "tokens", window - 1)),
        ]
        limited = limits.max_concurrent is not None
        if limited:
            # Counted here before the store is asked, so that this router's
            # requests racing for the same key each see the others.
            self._inflight[key] = self._inflight.get(key, 0) + 1
            # The heartbeat goes with the count, so that a router's first
            # request counts at the others before its heartbeat loop has run.
            routers = self._key("routers")
            ops += [
                self._own(key, self._inflight[key]),
                Put(routers, self._writer, now, _ROUTERS_TTL_S),
                Read(self._key(key, "inflight")),
                Read(routers),
            ]
        try:
            results = await self._run(ops)
        except BaseException:  # closed store (503), or the request was cancelled
            self._uncount(key, limited)
            raise
        if results is None:  # served unmetered; still in flight here
            return Admission(key, inflight=limited)
        over = self._over(limits, results, elapsed, now)
        if over.limit is None:
            return Admission(key, over.headers, inflight=limited)
        self._uncount(key, limited)
        undo: list[Op] = [Add(requests, "n", -1, _WINDOW_TTL_S)]
        if limited:
            undo.append(self._own(key, self._inflight.get(key, 0)))
        await self._run(undo, metering=False)
        raise RateLimitError(
            f"Rate limit reached for key {key!r} on {over.limit}: {over.detail}. "
            f"Please try again in {reset_text(over.retry_after)}.",
            limit=over.limit,
            retry_after=over.retry_after,
            headers=over.headers,
        )

    def _uncount(self, key: str, limited: bool) -> None:
        if limited:
            self._inflight[key] = max(0, self._inflight.get(key, 0) - 1)

    def _over(self, limits: KeyLimits, results: list[Result], elapsed: float, now: float) -> _Over:
        cur_requests = _number(results[0])  # this request included
        prev_requests = _field(results[1], "n")
        cur_tokens = _field(results[2], "n")
        prev_tokens = _field(results[3], "n")
        over = _Over()
        rpm = limits.requests_per_minute
        if rpm is not None:
            used = sliding_count(prev_requests, cur_requests, elapsed)
            refused = used > rpm
            # When one more request fits: this one counts if it is admitted.
            mine = cur_requests - (1 if refused else 0)
            wait = seconds_until_at_most(prev_requests, mine, rpm - 1, elapsed)
            over.header("requests", rpm, rpm - used, wait)
            if refused:
                over.refuse("requests", f"Limit {rpm} / min, Used {math.ceil(used - 1)}", wait)
        tpm = limits.tokens_per_minute
        if tpm is not None:
            used = sliding_count(prev_tokens, cur_tokens, elapsed)
            wait = seconds_until_below(prev_tokens, cur_tokens, tpm, elapsed)
            over.header("tokens", tpm, tpm - used, wait)
            if used >= tpm:
                over.refuse("tokens", f"Limit {tpm} tokens / min, Used {math.ceil(used)}", wait)
        cap = limits.max_concurrent
        if cap is not None:
            fields = _fields(results[6])
            beats = _fields(results[7])
            live = {w for w, at in beats.items() if now - at < ROUTER_LIVE_S} | {self._writer}
            running = round(sum(max(0.0, n) for w, n in fields.items() if w in live))
            if running > cap:
                over.refuse("concurrency", f"Limit {cap} in flight, Running {running - 1}", 1.0)
        return over

    async def finish(
        self, admission: Admission, usage: tuple[int, int] | None, spend: float
    ) -> None:
        """Count what an admitted request used, and take it out of the in-flight count.

        Call it once per admission; the in-flight count is taken out here,
        before any store call, so a failing store cannot keep it.
        """
        key = admission.key
        ops: list[Op] = []
        if admission.inflight:
            self._uncount(key, True)
            ops.append(self._own(key, self._inflight[key]))
        prompt, completion = usage or (0, 0)
        window = int(self._clock() // WINDOW_S)
        totals = self._key(key, "usage")
        ops += [
            Add(totals, "requests", 1, _USAGE_TTL_S),
            Add(totals, "prompt_tokens", prompt, _USAGE_TTL_S),
            Add(totals, "completion_tokens", completion, _USAGE_TTL_S),
            Add(totals, "spend", spend, _USAGE_TTL_S),
            Put(self._key("keys"), key, 1, _USAGE_TTL_S),
        ]
        if prompt + completion and self.limits_of(key).tokens_per_minute is not None:
            tokens = self._key(key, "tokens", window)
            ops.append(Add(tokens, "n", prompt + completion, _WINDOW_TTL_S))
        await self._run(ops, metering=False)

    async def heartbeat(self) -> None:
        """Mark this router replica alive, and put its in-flight counts as they are."""
        ops: list[Op] = [Put(self._key("routers"), self._writer, self._clock(), _ROUTERS_TTL_S)]
        ops += [self._own(key, n) for key, n in self._inflight.items()]
        await self._run(ops, metering=False)
        for key in [k for k, n in self._inflight.items() if n == 0]:
            del self._inflight[key]  # put as 0 once; nothing to keep

    async def _run(self, ops: list[Op], *, metering: bool = True) -> list[Result] | None:
        """The ops' results; None when the store failed and the request goes on unmetered."""
        try:
            return await self._counters.run(ops)
        except QuotaStoreError as err:
            if metering and self._closed:
                raise StoreUnavailableError(
                    "the quota store is unavailable and router.auth.store.on_error is closed"
                ) from err
            logger.warning("quota store: %s (request not metered)", err)
            return None


@dataclass(slots=True)
class _Over:
    """The headers of an admission, and the first limit it broke."""

    headers: dict[str, str] = field(default_factory=dict)
    limit: str | None = None
    detail: str = ""
    retry_after: float = 0.0

    def header(self, what: str, limit: int, remaining: float, reset_s: float) -> None:
        self.headers[f"x-ratelimit-limit-{what}"] = str(limit)
        self.headers[f"x-ratelimit-remaining-{what}"] = str(max(0, math.floor(remaining)))
        self.headers[f"x-ratelimit-reset-{what}"] = reset_text(reset_s)

    def refuse(self, limit: str, detail: str, retry_after: float) -> None:
        if self.limit is None:
            self.limit, self.detail, self.retry_after = limit, detail, max(retry_after, 0.001)


def _number(result: Result) -> float:
    return result if isinstance(result, float | int) else 0.0


def _fields(result: Result) -> dict[str, float]:
    return result if isinstance(result, dict) else {}


def _field(result: Result, name: str) -> float:
    return _fields(result).get(name, 0.0)


async def usage_of_keys(counters: Counters, app: str) -> dict[str, dict[str, float]]:
    """Every key's usage totals in garden ``app``: requests, tokens and spend."""
    prefix = f"{app}:quota"
    keys = _fields((await counters.run([Read(f"{prefix}:keys")]))[0])
    names = sorted(keys)
    results = await counters.run([Read(f"{prefix}:{name}:usage") for name in names])
    return {
        name: {f: _field(result, f) for f in _USAGE_FIELDS}
        for name, result in zip(names, results, strict=True)
    }


def quotas_for(
    garden: GardenConfig,
    writer: str,
    environ: Mapping[str, str],
    counters: Counters | None = None,
) -> Quotas:
    """The :class:`Quotas` of ``garden``'s ``router.auth``, for router replica ``writer``.

    ``counters`` defaults to the store ``router.auth.store`` names.
    """
    auth = garden.router.auth
    store = auth.store
    if counters is None:
        counters = counters_for(
            store.kind,
            garden.name,
            environ,
            url_env=store.redis_url_env,
            timeout_s=store.timeout_ms / 1000,
        )
    return Quotas(
        garden.name,
        {k.name: KeyLimits.of(k) for k in auth.keys},
        KeyLimits.of(auth.default_limits),
        counters,
        writer,
        on_error=store.on_error,
    )


def spend_of(garden: GardenConfig) -> Callable[[str, tuple[int, int] | None], float]:
    """``spend(model, usage)``: a request's share of its model's ``cost_per_hour``.

    From the garden's service profile (:func:`autoscaling.profile.token_prices`);
    a model the profile lacks costs nothing (and is logged once, here).
    """
    from autoscaling.profile import ProfileError, load_profiles, token_prices

    prices: dict[str, TokenPrice] = {}
    try:
        profiles = load_profiles(garden.autoscaling.profile)
    except ProfileError as err:
        logger.warning("key spend not priced: %s", err)
        return lambda _model, _usage: 0.0
    for m in garden.models:
        try:
            prices |= token_prices(profiles, [(m.name, m.cost_per_hour, m.slo.tpot_ms / 1000)])
        except ProfileError as err:
            logger.warning("key spend of %s not priced: %s", m.name, err)

    def spend(model: str, usage: tuple[int, int] | None) -> float:
        price = prices.get(model)
        return 0.0 if price is None or usage is None else price.of(*usage)

    return spend
