"""What the autoscaler and the router tell each other, through the garden's shared store.

The garden's policies run in Ray Serve's controller; the router runs in its
own replicas. They share :mod:`cluster.store` (Ray's internal key-value
store, in the GCS, unless another store is passed):

* the policies write which models the budget caps, when that changes; the
  router reads it with its other model states, at least once a second;
* every router replica writes, every refresh, how many of its outstanding
  requests each specialist could not take (spilled to the generalist), under
  its own key and with an expiry; the policies sum the standing reports at
  most once a second and count the sum as that specialist's demand.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Mapping
from typing import ClassVar

from cluster.store import RayKVStore, SharedStore, put_report, sum_reports

__all__ = [
    "SPILL_TTL_S",
    "SpillReader",
    "publish_capped",
    "publish_spilled",
    "read_capped",
    "read_spilled",
]

#: How long one router replica's spill report stands unless renewed. Routers
#: renew theirs every ``router.state_refresh_s`` (at most 1 s), so a live
#: router's report never lapses, and a dead one's stops counting within this.
SPILL_TTL_S = 10.0


def _store(store: SharedStore | None) -> SharedStore:
    return RayKVStore() if store is None else store


def _key(app: str) -> str:
    return f"{app}:budget_capped"


def publish_capped(app: str, capped: frozenset[str], store: SharedStore | None = None) -> None:
    """Record that the budget caps ``capped`` models of garden ``app``."""
    _store(store).put(_key(app), json.dumps(sorted(capped)))


def read_capped(app: str, store: SharedStore | None = None) -> frozenset[str]:
    """The models of garden ``app`` the budget caps now (empty before any report)."""
    raw = _store(store).get(_key(app))
    if not raw:
        return frozenset()
    return frozenset(str(m) for m in json.loads(raw))


def _spill_prefix(app: str) -> str:
    return f"{app}:spilled:"


def publish_spilled(
    app: str,
    spilled: Mapping[str, int],
    writer: str,
    store: SharedStore | None = None,
    ttl_s: float = SPILL_TTL_S,
) -> None:
    """Record router replica ``writer``'s outstanding spilled requests per specialist of ``app``.

    Each router replica reports under its own key, for ``ttl_s`` seconds;
    :func:`read_spilled` sums the reports that stand.
    """
    put_report(_store(store), _spill_prefix(app), writer, spilled, ttl_s)


def read_spilled(app: str, store: SharedStore | None = None) -> dict[str, float]:
    """The spilled requests per specialist of ``app``, summed over the router replicas' reports."""
    return sum_reports(_store(store), _spill_prefix(app))


class SpillReader:
    """``read_spilled`` at most once per ``ttl_s``: policies run many times a second.

    :meth:`for_app` gives the one reader a process keeps per garden, so the
    controller reads a garden's reports once per ``ttl_s`` for all its
    policies, not once per model.
    """

    _shared: ClassVar[dict[str, SpillReader]] = {}
    _shared_lock: ClassVar[threading.Lock] = threading.Lock()

    @classmethod
    def for_app(cls, app: str) -> SpillReader:
        """This process's reader of garden ``app``'s spill reports."""
        with cls._shared_lock:
            reader = cls._shared.get(app)
            if reader is None:
                reader = cls._shared[app] = cls(app)
            return reader

    def __init__(
        self,
        app: str,
        ttl_s: float = 1.0,
        read: Callable[[str], dict[str, float]] = read_spilled,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._app, self._ttl, self._read, self._clock = app, ttl_s, read, clock
        self._value: dict[str, float] = {}
        self._at = float("-inf")

    def __call__(self, model: str) -> float:
        now = self._clock()
        if now - self._at >= self._ttl:
            self._value, self._at = self._read(self._app), now
        return self._value.get(model, 0.0)
