"""Sticky conversations: each session's domain decision, shared by every router replica.

A conversation is named by the ``x-session-id`` header, or else by the
OpenAI ``user`` field. Its :class:`~router.policy.Session` lives in the
garden's shared store (the one the spill counts use) under
``{app}:session:{key}`` with an expiry that every turn renews, so any router
replica routes the next turn the same way, and an idle conversation lapses.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from typing import Any

from ray.exceptions import RayError

from cluster.store import SharedStore
from router.policy import Reason, Session

__all__ = ["SESSION_HEADER", "Sessions", "session_key"]

#: What a store call or a stored value may raise: Ray's and the OS's
#: failures, and a value some other writer garbled.
_STORE_ERRORS = (RayError, RuntimeError, OSError, ValueError, KeyError, TypeError)

SESSION_HEADER = "x-session-id"

logger = logging.getLogger("ray.serve")


def session_key(headers: Mapping[str, str], body: Mapping[str, Any]) -> str | None:
    """The conversation a request belongs to: ``x-session-id``, else ``user``, else none.

    Scoped by the request's ``authorization`` header, so that clients with
    different API keys that pick the same id (``user: "alice"``, say) never
    share, or steer, one another's session. Hashed, so that neither an id
    (any length, any characters) nor a ``user`` value nor a key is stored.
    """
    raw = headers.get(SESSION_HEADER)
    source = "header"
    if not raw:
        user = body.get("user")
        raw, source = (user, "user") if isinstance(user, str) and user else (None, "")
    if not raw:
        return None
    scope = headers.get("authorization", "")
    return hashlib.sha256(f"{scope}\0{source}:{raw}".encode()).hexdigest()[:32]


class Sessions:
    """The sessions of garden ``app`` in ``store``, each expiring ``ttl_s`` after its last turn.

    Store calls run in a thread (Ray's KV store is a blocking GCS call); a
    failing store makes a turn unsticky, never a failed request.
    """

    def __init__(
        self,
        store: SharedStore,
        app: str,
        ttl_s: float,
        *,
        recent: int = 10_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._store = store
        self._prefix = f"{app}:session:"
        self._ttl_s = ttl_s
        # This replica's own recent writes, so that a client's next turn sees
        # its session even before the store write lands. A conversation's
        # domain does not change while its session lives, so a copy here is
        # never staler than the store's.
        self._recent: OrderedDict[str, tuple[Session, float]] = OrderedDict()
        self._recent_max = recent
        self._clock = clock

    def remember(self, key: str, session: Session) -> None:
        """Hold ``session`` for this replica's next turns of ``key`` (no I/O)."""
        self._recent[key] = (session, self._clock() + self._ttl_s)
        self._recent.move_to_end(key)
        while len(self._recent) > self._recent_max:
            self._recent.popitem(last=False)

    async def get(self, key: str) -> tuple[Session | None, bool]:
        """The session ``key`` is in (None: new or expired), and whether it could be read.

        A session that could not be read must not be written over: the
        store may hold a good one that other replicas still route by.
        """
        mine = self._recent.get(key)
        if mine is not None and self._clock() < mine[1]:
            return mine[0], True
        try:
            raw = await asyncio.to_thread(self._store.get, self._prefix + key)
            if raw is None:
                return None, True
            data = json.loads(raw)
            return Session(str(data["domain"]), Reason(data["reason"])), True
        except _STORE_ERRORS as err:  # decide afresh, and leave the entry alone
            logger.warning("session %s not read: %r", key, err)
            return None, False

    async def save(self, key: str, session: Session) -> None:
        """Write (and renew) ``session`` for ``key`` in the shared store."""
        value = json.dumps({"domain": session.domain, "reason": session.reason.value})
        try:
            await asyncio.to_thread(self._store.put, self._prefix + key, value, self._ttl_s)
        except _STORE_ERRORS as err:
            logger.warning("session %s not written: %r", key, err)

    async def reap(self) -> None:
        """Delete sessions long expired (listing them does, see :mod:`cluster.store`)."""
        try:
            await asyncio.to_thread(self._store.items, self._prefix)
        except _STORE_ERRORS as err:
            logger.warning("sessions not reaped: %r", err)
