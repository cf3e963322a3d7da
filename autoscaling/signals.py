"""What the autoscaler and the router tell each other, through Ray's KV store.

The garden's policies run in Ray Serve's controller; the router runs in its
own replicas. They share Ray's internal key-value store (in the GCS):

* the policies write which models the budget caps, when that changes; the
  router reads it with its other model states, at least once a second;
* the router writes, every refresh, how many of its outstanding requests
  each specialist could not take (spilled to the generalist); the policies
  read it at most once a second and count it as that specialist's demand.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable

__all__ = ["SpillReader", "publish_capped", "publish_spilled", "read_capped", "read_spilled"]

_NAMESPACE = "model_garden"


def _key(app: str) -> bytes:
    return f"{app}:budget_capped".encode()


def publish_capped(app: str, capped: frozenset[str]) -> None:
    """Record that the budget caps ``capped`` models of garden ``app``."""
    from ray.experimental.internal_kv import _internal_kv_put

    _internal_kv_put(_key(app), json.dumps(sorted(capped)).encode(), namespace=_NAMESPACE)


def read_capped(app: str) -> frozenset[str]:
    """The models of garden ``app`` the budget caps now (empty before any report)."""
    from ray.experimental.internal_kv import _internal_kv_get

    raw = _internal_kv_get(_key(app), namespace=_NAMESPACE)
    if not raw:
        return frozenset()
    return frozenset(str(m) for m in json.loads(raw))


def _spill_key(app: str) -> bytes:
    return f"{app}:spilled".encode()


def publish_spilled(app: str, spilled: dict[str, int]) -> None:
    """Record the router's outstanding spilled requests per specialist of ``app``."""
    from ray.experimental.internal_kv import _internal_kv_put

    _internal_kv_put(_spill_key(app), json.dumps(spilled).encode(), namespace=_NAMESPACE)


def read_spilled(app: str) -> dict[str, float]:
    """The spilled requests per specialist of ``app`` (empty before any report)."""
    from ray.experimental.internal_kv import _internal_kv_get

    raw = _internal_kv_get(_spill_key(app), namespace=_NAMESPACE)
    if not raw:
        return {}
    return {str(m): float(n) for m, n in json.loads(raw).items()}


class SpillReader:
    """``read_spilled`` at most once per ``ttl_s``: policies run many times a second."""

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
