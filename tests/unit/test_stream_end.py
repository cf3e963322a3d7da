"""A client that leaves right after ``[DONE]`` got the whole stream: not a failed request."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import pytest

from router.ingress import _sse

pytestmark = pytest.mark.unit

_TOKEN = 'data: {"id": "c1", "choices": [{"index": 0, "delta": {"content": "hi"}}]}\n\n'


@dataclass
class _Head:
    status: int = 200
    body: str | None = None


@dataclass
class _Reply:
    head: _Head = field(default_factory=_Head)
    closed: bool = False

    async def chunks(self) -> AsyncIterator[str]:
        yield _TOKEN
        yield "data: [DONE]\n\n"
        await asyncio.Event().wait()  # the replica's stream has not ended yet

    def close(self) -> None:
        self.closed = True


@dataclass
class _Traced:
    finished: dict[str, Any] = field(default_factory=dict)

    def observe(self, piece: Any, *, first: bool) -> None:
        pass

    def finish(self, **outcome: Any) -> None:
        self.finished = outcome


async def _leave_after(pieces: int) -> tuple[_Reply, _Traced]:
    reply, traced = _Reply(), _Traced()
    stream = _sse(reply, traced)  # type: ignore[arg-type]
    for _ in range(pieces):
        await anext(stream)
    await stream.aclose()  # the client closes the connection
    return reply, traced


def test_leaving_after_done_is_a_complete_stream() -> None:
    reply, traced = asyncio.run(_leave_after(2))
    assert reply.closed
    assert traced.finished["status"] == 200
    assert traced.finished["error"] is None and traced.finished["error_type"] is None


def test_leaving_before_done_is_a_client_gone() -> None:
    reply, traced = asyncio.run(_leave_after(1))
    assert reply.closed
    assert traced.finished["status"] == 499
    assert traced.finished["error"] == "client disconnected"
