"""The router's real FastAPI app served in-process: no Ray, stand-in model replicas.

``serve_router`` builds a ``Router`` (the class under ``@serve.ingress``) from a
garden config and serves the app Ray Serve's ingress built, with its routes
and error handlers, through Starlette's ``TestClient`` (an ``httpx.Client``,
so the official ``openai`` client can sit on top). Only Serve's replica
context, the health refresh and the model replicas are stand-ins.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from starlette.testclient import TestClient

from cluster.config import GardenConfig, load_config
from cluster.counters import MemoryCounters
from deployments.protocol import ReplyHead, RequestBody
from router import _health

__all__ = [
    "FakeHandle",
    "FakeMetrics",
    "ReplyStream",
    "lexical_garden",
    "router_class",
    "serve_router",
]


def _completion(body: dict[str, Any]) -> bytes:
    return json.dumps(
        {
            "id": "chatcmpl-1",
            "object": "chat.completion",
            "created": 0,
            "model": body["model"],
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": "hi"},
                    "finish_reason": "stop",
                }
            ],
            "usage": {"prompt_tokens": 3, "completion_tokens": 1, "total_tokens": 4},
        }
    ).encode()


class ReplyStream:
    """A model replica's reply stream: its head, then its chunks, as given."""

    def __init__(self, items: list[Any]) -> None:
        self.items = list(items)

    def __aiter__(self) -> ReplyStream:
        return self

    async def __anext__(self) -> Any:
        if not self.items:
            raise StopAsyncIteration
        return self.items.pop(0)

    def cancel(self) -> None:
        pass


def _replies(body: dict[str, Any]) -> ReplyStream:
    """One reply of a model replica: its head (a chat completion), then nothing."""
    return ReplyStream([ReplyHead(200, _completion(body))])


class _TokenCount:
    """A replica's ``count_tokens``: a word a token (a stand-in tokenizer)."""

    def __init__(self, texts: list[str]) -> None:
        self.texts = texts

    def remote(self, text: str) -> Any:
        self.texts.append(text)

        async def count() -> int:
            return len(text.split())

        return count()


class FakeHandle:
    """A model deployment's handle: records each body and the options it was sent with."""

    def __init__(
        self,
        sent: list[tuple[dict[str, Any], dict[str, Any]]] | None = None,
        replies: Callable[[dict[str, Any]], Any] | None = None,
        counted: list[str] | None = None,
        endpoints: list[str] | None = None,
        traces: list[dict[str, str]] | None = None,
    ) -> None:
        self.generate = self
        #: The endpoint of each request, in the order of ``sent``.
        self.endpoints: list[str] = [] if endpoints is None else endpoints
        #: The W3C trace headers sent with each request, in the order of ``sent``.
        self.traces: list[dict[str, str]] = [] if traces is None else traces
        self.sent: list[tuple[dict[str, Any], dict[str, Any]]] = [] if sent is None else sent
        #: Texts whose tokens were counted (``count_tokens``).
        self.counted: list[str] = counted if counted is not None else []
        self.count_tokens = _TokenCount(self.counted)
        self._options: dict[str, Any] = {}
        #: Makes each request's reply stream (default: one chat completion).
        self.replies = replies or _replies

    def options(self, **options: Any) -> FakeHandle:
        copy = FakeHandle(self.sent, self.replies, self.counted, self.endpoints, self.traces)
        copy._options = {**self._options, **options}
        return copy

    def remote(
        self, endpoint: str, request: RequestBody, trace: dict[str, str] | None = None
    ) -> Any:
        body = request.json
        self.sent.append((body, self._options))
        self.endpoints.append(endpoint)
        self.traces.append(dict(trace or {}))
        return self.replies(body)


class FakeMetrics:
    """Route metrics kept in lists (Ray's need a cluster); only key metrics are kept."""

    def __init__(self) -> None:
        self.usage: list[tuple[str, str, tuple[int, int] | None, float]] = []
        self.limited: list[tuple[str, str]] = []
        #: The GenAI metrics of each answered request (RouteMetrics.answered's arguments).
        self.genai: list[tuple[Any, ...]] = []

    def record(self, *_: Any) -> None:
        pass

    def resumed(self, *_: Any) -> None:
        pass

    def answered(self, *args: Any) -> None:
        self.genai.append(args)

    def key_usage(self, key: str, model: str, usage: tuple[int, int] | None, spend: float) -> None:
        self.usage.append((key, model, usage, spend))

    def rate_limited(self, key: str, limit: str) -> None:
        self.limited.append((key, limit))


def router_class() -> Any:
    """The ``Router`` class as written, under Serve's deployment and ingress wrappers."""
    from router.ingress import Router

    cls = Router.func_or_class.__mro__[1]
    assert cls.__qualname__ == "Router"
    return cls


@contextlib.contextmanager
def serve_router(
    garden: GardenConfig,
    monkeypatch: pytest.MonkeyPatch,
    replies: Mapping[str, Callable[[dict[str, Any]], Any]] | None = None,
    *,
    counters: Any = None,
    metrics: FakeMetrics | None = None,
) -> Iterator[tuple[TestClient, dict[str, FakeHandle]]]:
    """A client of the garden's router app, and the fake handle of each model.

    ``replies`` makes the reply streams of the models it names; ``counters``
    (a :class:`~cluster.counters.Counters`) holds the quotas of a garden
    with ``router.auth``; ``metrics`` records what the router counts.
    """
    from ray import serve

    from router.ingress import app

    handles = {m.name: FakeHandle(replies=(replies or {}).get(m.name)) for m in garden.models}
    router = router_class()(
        handles,
        garden.model_dump(mode="json"),
        metrics=metrics or FakeMetrics(),
        # Quota counters in memory, never the Ray actor (which would start a Ray here).
        counters=counters if counters is not None else MemoryCounters(),
    )

    async def classify(text: str) -> Any:
        return router._classifier.classify(text)

    # Serve's @serve.batch queue lives on the class once used, which then no
    # longer pickles for a later test's serve.run; batching has its own tests.
    router._classify = classify

    async def every_model_running(states: Any, _app: str, _writer: str) -> None:
        states.observe(dict.fromkeys(handles, 1))

    async def idle(*_: Any) -> None:
        await asyncio.Event().wait()

    monkeypatch.setattr(_health, "refresh", every_model_running)
    monkeypatch.setattr(_health, "watch", idle)
    # What Serve's class-based view asks for to find the replica's instance.
    monkeypatch.setattr(
        serve, "get_replica_context", lambda: SimpleNamespace(servable_object=router)
    )
    with TestClient(app) as client:
        yield client, handles


def lexical_garden(data_dir: Path, **router: Any) -> GardenConfig:
    """The embedded garden with a lexical-only classifier (fast to fit), cached in ``data_dir``.

    ``router`` overrides keys of the ``router`` section.
    """
    data = load_config(None).model_dump(mode="json")
    data["data_dir"] = str(data_dir)
    data["router"]["classifier"]["options"] = {"semantic": False}
    data["router"].update(router)
    return GardenConfig.model_validate(data)
