"""What the autoscaler tells the router: which models the budget caps.

The garden's policies run in Ray Serve's controller; the router runs in its
own replicas. They share Ray's internal key-value store (in the GCS): the
policies write the capped set when it changes, and the router reads it with
its other model states, at least once a second.
"""

from __future__ import annotations

import json

__all__ = ["publish_capped", "read_capped"]

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
