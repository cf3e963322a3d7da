"""The router classifies the texts of requests that arrive together in one call."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator, Sequence
from types import SimpleNamespace

import pytest

from router.ingress import Router
from router.policy import Features

pytestmark = pytest.mark.unit


class _Recording:
    """A classifier that answers each text with its own domain and records each call."""

    domains = ("code", "general")

    def __init__(self) -> None:
        self.calls: list[list[str]] = []
        self.threads: set[int] = set()

    def classify_many(self, texts: Sequence[str]) -> list[Features]:
        self.calls.append(list(texts))
        self.threads.add(threading.get_ident())
        time.sleep(0.05)  # CPU work: later arrivals queue meanwhile
        return [Features(t.split(":")[0], 0.9, stage="lexical") for t in texts]


class _Replica:
    """Only what ``Router._classify`` reads (the router itself needs Serve handles)."""

    _classify = Router.func_or_class._classify

    def __init__(self, classifier: _Recording) -> None:
        self._classifier = classifier


@pytest.fixture
def fresh_batch_queue() -> Iterator[None]:
    """Drop the batch queue the test creates: serve.batch keeps one per decorated
    method, on the class, and a class holding one can no longer be pickled to deploy."""
    lazy = Router.func_or_class._classify.set_max_batch_size.__self__
    yield
    lazy._queue = None


@pytest.mark.usefixtures("fresh_batch_queue")
def test_a_burst_is_classified_in_few_calls_off_the_event_loop(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # serve.batch reads the replica's limits; this test runs outside a replica.
    config = SimpleNamespace(max_ongoing_requests=1024)
    monkeypatch.setattr(
        "ray.serve.get_replica_context", lambda: SimpleNamespace(_deployment_config=config)
    )
    classifier = _Recording()
    replica = _Replica(classifier)
    texts = [f"{'code' if i % 2 else 'general'}:{i}" for i in range(12)]

    async def burst() -> list[Features]:
        return await asyncio.gather(*(replica._classify(t) for t in texts))

    results = asyncio.run(burst())
    assert [r.domain for r in results] == [t.split(":")[0] for t in texts]  # each its own answer
    assert sorted(t for call in classifier.calls for t in call) == sorted(texts)  # each once
    assert len(classifier.calls) < len(texts) / 2
    assert threading.get_ident() not in classifier.threads
