"""The garden's store for state shared by router replicas and the controller.

Every router replica and every autoscaling policy (which run in Ray Serve's
controller) may read and write it. Entries are strings under string keys,
optionally with an expiry, so that what a dead writer left behind (a router
replica's last spill count, say) lapses on its own instead of lingering as
phantom state. Readers list a key prefix to gather one entry per writer.

:class:`SharedStore` is the interface; :class:`RayKVStore` keeps entries in
Ray's internal key-value store (the GCS), which every process of the cluster
reaches and which lives as long as the cluster; :class:`MemoryStore` keeps
them in one process (tests and the simulator). A Redis store would implement
the same four methods with ``SET key value PX ttl`` and ``SCAN``.

Expiry is by wall clock (:func:`time.time`): writers and readers are
different processes, possibly on different nodes, whose monotonic clocks do
not compare. TTLs are seconds, far above the skew of NTP-synced nodes.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Mapping
from typing import Protocol, runtime_checkable

from cluster.ray_internals import kv_delete, kv_get, kv_keys, kv_put

__all__ = [
    "REAP_AFTER_S",
    "MemoryStore",
    "RayKVStore",
    "SharedStore",
    "max_reports",
    "put_report",
    "sum_reports",
]

logger = logging.getLogger(__name__)


@runtime_checkable
class SharedStore(Protocol):
    """Keys to string values, each with an optional expiry."""

    def put(self, key: str, value: str, ttl_s: float | None = None) -> None:
        """Set ``key``; with ``ttl_s`` it reads as absent ``ttl_s`` seconds from now."""
        ...

    def get(self, key: str) -> str | None:
        """The live value of ``key``, or None if unset or expired."""
        ...

    def items(self, prefix: str) -> dict[str, str]:
        """Every live entry whose key starts with ``prefix``."""
        ...

    def delete(self, key: str) -> None:
        """Remove ``key`` (no error if absent)."""
        ...


def _wrap(value: str, ttl_s: float | None, now: float) -> str:
    if ttl_s is not None and ttl_s <= 0:
        raise ValueError(f"ttl_s must be > 0, got {ttl_s}")
    return json.dumps({"v": value, "exp": None if ttl_s is None else now + ttl_s})


#: Seconds past its expiry after which a reader deletes an entry. Deleting
#: it the moment it lapses could erase the fresh report of a writer that
#: renews it just then; one gone this long has no live writer.
REAP_AFTER_S = 60.0


def _unwrap(raw: str, now: float) -> str | None:
    entry = json.loads(raw)
    exp = entry["exp"]
    return None if exp is not None and now >= exp else str(entry["v"])


def _stale(raw: str, now: float) -> bool:
    exp = json.loads(raw)["exp"]
    return exp is not None and now >= exp + REAP_AFTER_S


#: What a value that :func:`_wrap` did not write raises when read.
_GARBLED = (ValueError, KeyError, TypeError)


def _listed(key: str, raw: str, now: float) -> tuple[str | None, bool]:
    """A listed entry's live value (None: expired or garbled), and whether to delete it.

    A garbled entry (written by something else under the namespace) is
    skipped and left alone, so that one such entry neither hides the others
    nor stops the reaping of the expired ones.
    """
    try:
        return _unwrap(raw, now), _stale(raw, now)
    except _GARBLED as err:
        logger.warning("shared store entry %r is not readable, skipped: %r", key, err)
        return None, False


class MemoryStore:
    """A :class:`SharedStore` in this process's memory; ``clock`` is injected for tests."""

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self._entries: dict[str, str] = {}
        self._clock = clock

    def put(self, key: str, value: str, ttl_s: float | None = None) -> None:
        self._entries[key] = _wrap(value, ttl_s, self._clock())

    def get(self, key: str) -> str | None:
        raw = self._entries.get(key)
        return None if raw is None else _unwrap(raw, self._clock())

    def items(self, prefix: str) -> dict[str, str]:
        now = self._clock()
        out: dict[str, str] = {}
        for key, raw in [(k, v) for k, v in self._entries.items() if k.startswith(prefix)]:
            value, stale = _listed(key, raw, now)
            if stale:
                del self._entries[key]
            elif value is not None:
                out[key] = value
        return out

    def delete(self, key: str) -> None:
        self._entries.pop(key, None)


class RayKVStore:
    """A :class:`SharedStore` in Ray's internal KV store, under ``namespace``.

    Reached through :mod:`cluster.ray_internals` (Ray's dashboard and Serve
    use the same store); the process must be connected to the cluster (a
    driver, an actor or a Serve replica). Entries expired for
    :data:`REAP_AFTER_S` are deleted by the reader that finds them.
    """

    def __init__(self, namespace: str = "model_garden", clock: Callable[[], float] = time.time):
        self.namespace = namespace
        self._clock = clock

    def put(self, key: str, value: str, ttl_s: float | None = None) -> None:
        kv_put(key, _wrap(value, ttl_s, self._clock()), self.namespace)

    def get(self, key: str) -> str | None:
        raw = kv_get(key, self.namespace)
        return None if raw is None else _unwrap(raw, self._clock())

    def items(self, prefix: str) -> dict[str, str]:
        now = self._clock()
        out: dict[str, str] = {}
        for key in kv_keys(prefix, self.namespace):
            raw = kv_get(key, self.namespace)
            if raw is None:
                continue
            value, stale = _listed(key, raw, now)
            if stale:
                self.delete(key)
            elif value is not None:
                out[key] = value
        return out

    def delete(self, key: str) -> None:
        kv_delete(key, self.namespace)


def put_report(
    store: SharedStore, prefix: str, writer: str, counts: Mapping[str, float], ttl_s: float
) -> None:
    """Record ``writer``'s counts per name under ``prefix``, standing for ``ttl_s`` seconds.

    One key per writer (a router replica, say), so writers never overwrite
    each other, and a dead writer's report lapses on its own.
    """
    store.put(prefix + writer, json.dumps(dict(counts)), ttl_s=ttl_s)


def sum_reports(store: SharedStore, prefix: str, *, skip: str | None = None) -> dict[str, float]:
    """The counts per name of every report under ``prefix`` that stands, summed.

    ``skip`` leaves out one writer's own report; a report that is not a map
    of numbers is skipped.
    """
    total: dict[str, float] = {}
    for counts in _reports(store, prefix, skip):
        for name, n in counts.items():
            total[name] = total.get(name, 0.0) + n
    return total


def max_reports(store: SharedStore, prefix: str, *, skip: str | None = None) -> dict[str, float]:
    """The largest value per name over every report under ``prefix`` that stands."""
    top: dict[str, float] = {}
    for values in _reports(store, prefix, skip):
        for name, n in values.items():
            top[name] = max(top.get(name, n), n)
    return top


def _reports(store: SharedStore, prefix: str, skip: str | None) -> list[dict[str, float]]:
    out = []
    for key, raw in store.items(prefix).items():
        if skip is not None and key == prefix + skip:
            continue
        try:
            out.append({str(name): float(n) for name, n in json.loads(raw).items()})
        except (ValueError, TypeError, AttributeError) as err:
            logger.warning("report %r not read: %r", key, err)
    return out
