"""Counters every router replica shares: the per-key quotas' requests, tokens and concurrency.

The garden's :mod:`cluster.store` holds values a writer owns (a router's
report); quotas need counts that many routers change at once, atomically,
or two replicas would each admit a full quota. So this store has one
operation, :meth:`Counters.run`: a batch of :class:`Add`, :class:`Put` and
:class:`Read` on hashes (a key holding numeric fields), applied in order and
atomically with respect to every other batch, in one round trip.

A key expires ``ttl_s`` after the last :class:`Add` or :class:`Put` to it,
so windows and a dead router's fields lapse on their own.

Three forms:

- :class:`MemoryCounters`: this process (tests, the simulator).
- :class:`ActorCounters`: one named Ray actor of the garden (the embedded
  garden: it lives as long as the cluster, and every replica reaches it).
- :class:`RedisCounters`: a Redis server (``HINCRBYFLOAT``, ``HSET``,
  ``PEXPIRE`` and ``HGETALL`` in one ``MULTI`` transaction).

Every failure to reach the store raises
:class:`~cluster.exceptions.QuotaStoreError`.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

from cluster.exceptions import ConfigError, QuotaStoreError

__all__ = [
    "ActorCounters",
    "Add",
    "Counters",
    "MemoryCounters",
    "Op",
    "Put",
    "Read",
    "RedisCounters",
    "Result",
    "counter_actor_name",
    "counters_for",
    "end_counter_actor",
]


@dataclass(frozen=True, slots=True)
class Add:
    """Add ``amount`` to ``field`` of hash ``key``; the result is the field's new value."""

    key: str
    field: str
    amount: float
    ttl_s: float


@dataclass(frozen=True, slots=True)
class Put:
    """Set ``field`` of hash ``key`` to ``value``; the result is ``value``."""

    key: str
    field: str
    value: float
    ttl_s: float


@dataclass(frozen=True, slots=True)
class Read:
    """The result is every field of hash ``key`` (empty when absent or expired)."""

    key: str


Op = Add | Put | Read
Result = float | dict[str, float]


@runtime_checkable
class Counters(Protocol):
    """Hashes of numeric fields that many writers change atomically."""

    async def run(self, ops: Sequence[Op]) -> list[Result]:
        """Apply ``ops`` in order, atomically; one result per op (see each op)."""
        ...

    async def close(self) -> None:
        """Release connections (the store's data stays)."""
        ...


class MemoryCounters:
    """:class:`Counters` in this process's memory; ``clock`` (wall seconds) is injected."""

    #: How often expired hashes are swept (each minute's windows are never read again).
    SWEEP_EVERY_S = 60.0

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self._hashes: dict[str, tuple[dict[str, float], float]] = {}
        self._clock = clock
        self._swept_at = clock()

    def __len__(self) -> int:
        """Hashes held, expired ones not yet swept included."""
        return len(self._hashes)

    def apply(self, ops: Sequence[Op]) -> list[Result]:
        """:meth:`run`, synchronously (one call is atomic: nothing else runs meanwhile)."""
        now = self._clock()
        if now - self._swept_at >= self.SWEEP_EVERY_S:
            self._swept_at = now
            for key in [k for k, (_, expires) in self._hashes.items() if now >= expires]:
                del self._hashes[key]
        out: list[Result] = []
        for op in ops:
            fields = self._live(op.key, now)
            if isinstance(op, Read):
                out.append(dict(fields))
                continue
            if isinstance(op, Add):
                fields[op.field] = fields.get(op.field, 0.0) + op.amount
            else:
                fields[op.field] = op.value
            self._hashes[op.key] = (fields, now + op.ttl_s)
            out.append(fields[op.field])
        return out

    async def run(self, ops: Sequence[Op]) -> list[Result]:
        return self.apply(ops)

    async def close(self) -> None:
        return None

    def _live(self, key: str, now: float) -> dict[str, float]:
        entry = self._hashes.get(key)
        if entry is None or now >= entry[1]:
            self._hashes.pop(key, None)
            return {}
        return entry[0]


def counter_actor_name(app: str) -> str:
    """The name of garden ``app``'s counter actor (in Ray's ``serve`` namespace)."""
    return f"model_garden_counters_{app}"


class _CounterActor:
    """The Ray actor behind :class:`ActorCounters`: a :class:`MemoryCounters`, a call at a time."""

    def __init__(self) -> None:
        self._counters = MemoryCounters()

    def run(self, ops: Sequence[Op]) -> list[Result]:
        return self._counters.apply(ops)


def end_counter_actor(app: str, timeout_s: float = 10.0) -> bool:
    """Kill garden ``app``'s counter actor, if it runs (a joined cluster's ``garden down``).

    Returns once Ray has released its name (``ray.kill`` returns before).
    """
    import ray

    try:
        actor = ray.get_actor(counter_actor_name(app), namespace="serve")
    except ValueError:
        return False
    ray.kill(actor, no_restart=True)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            ray.get_actor(counter_actor_name(app), namespace="serve")
        except ValueError:
            break
        time.sleep(0.1)
    return True


class ActorCounters:
    """:class:`Counters` in garden ``app``'s named Ray actor, created by whoever needs it first.

    The actor is detached (it outlives the router replica that made it, so
    a router's death loses no count), takes no CPU, and runs one batch at a
    time, which is what makes a batch atomic. ``garden down`` ends it with
    the cluster, or explicitly on a joined cluster.
    """

    def __init__(self, app: str, timeout_s: float = 0.5, start_timeout_s: float = 60.0) -> None:
        self._name = counter_actor_name(app)
        self._timeout_s = timeout_s
        # Until a first call succeeds the actor may still be starting (a process
        # of its own, seconds on a small machine): that call may take this long.
        self._start_timeout_s = start_timeout_s
        self._started = False
        self._actor: Any = None

    def _handle(self) -> Any:
        """The actor, created if no one has yet (a blocking call to Ray's GCS)."""
        import ray

        remote = ray.remote(num_cpus=0, max_restarts=-1)(_CounterActor)
        return remote.options(
            name=self._name, namespace="serve", lifetime="detached", get_if_exists=True
        ).remote()

    async def run(self, ops: Sequence[Op]) -> list[Result]:
        from ray.exceptions import RayError

        timeout = self._timeout_s if self._started else self._start_timeout_s
        try:
            if self._actor is None:
                # Off the event loop: looking the actor up (or creating it) waits on the GCS.
                self._actor = await asyncio.wait_for(asyncio.to_thread(self._handle), timeout)
            ref = self._actor.run.remote(list(ops))
            results = list(await asyncio.wait_for(ref, timeout))
        except TimeoutError as err:
            raise QuotaStoreError(
                f"the counter actor {self._name!r}: no answer in {timeout} s"
            ) from err
        except (RayError, ValueError) as err:
            # Look it up again next time (Ray restarts it, with empty counts: the
            # routers' next heartbeats put their in-flight requests back).
            self._actor = None
            raise QuotaStoreError(f"the counter actor {self._name!r}: {err!r}") from err
        self._started = True
        return results

    async def close(self) -> None:
        self._actor = None


class RedisCounters:
    """:class:`Counters` in Redis at ``url``, every key under ``prefix``.

    A batch is one ``MULTI``/``EXEC`` transaction: Redis runs it without
    interleaving another client's commands.
    """

    def __init__(self, url: str, prefix: str, timeout_s: float = 0.5) -> None:
        import redis.asyncio as aioredis

        self._prefix = prefix
        self._redis = aioredis.Redis.from_url(
            url, socket_timeout=timeout_s, socket_connect_timeout=timeout_s
        )
        self._url = _redacted(url)

    async def run(self, ops: Sequence[Op]) -> list[Result]:
        from redis.exceptions import RedisError

        pipe = self._redis.pipeline(transaction=True)
        for op in ops:
            key = self._prefix + op.key
            if isinstance(op, Read):
                pipe.hgetall(key)
                continue
            if isinstance(op, Add):
                pipe.hincrbyfloat(key, op.field, op.amount)
            else:
                pipe.hset(key, op.field, repr(op.value))
            pipe.pexpire(key, max(1, int(op.ttl_s * 1000)))
        try:
            replies = await pipe.execute()
        except (RedisError, OSError, TimeoutError) as err:
            raise QuotaStoreError(f"Redis at {self._url}: {err!r}") from err
        out: list[Result] = []
        replies_left = iter(replies)
        for op in ops:
            reply = next(replies_left)
            if isinstance(op, Read):
                out.append({_text(k): float(v) for k, v in dict(reply).items()})
                continue
            next(replies_left)  # PEXPIRE's reply
            out.append(float(reply) if isinstance(op, Add) else op.value)
        return out

    async def close(self) -> None:
        await self._redis.aclose()


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def _redacted(url: str) -> str:
    """``url`` without its password, for messages."""
    scheme, sep, rest = url.partition("://")
    if "@" not in rest:
        return url
    return f"{scheme}{sep}***@{rest.rpartition('@')[2]}"


def counters_for(
    kind: str, app: str, environ: Mapping[str, str], *, url_env: str, timeout_s: float
) -> Counters:
    """The counters ``router.auth.store`` names, for garden ``app``.

    Raises :class:`ConfigError` naming ``router.auth.store.redis_url_env``
    when kind is ``redis`` and the variable is unset.
    """
    if kind == "ray":
        return ActorCounters(app, timeout_s)
    url = environ.get(url_env, "")
    if not url:
        raise ConfigError(
            "environment",
            [
                f"router.auth.store.redis_url_env: the environment variable {url_env!r} is "
                "not set; put the Redis URL (redis://host:6379/0) in it, or use kind: ray"
            ],
        )
    return RedisCounters(url, f"model_garden:{app}:", timeout_s)
