"""Mid-stream continuation: the transcript, the continuation request, and the router's stream.

The router's real app runs in-process (``tests._ingress``) with a specialist
whose stream dies after three tokens and a generalist that goes on.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from ray.exceptions import ActorDiedError
from starlette.testclient import TestClient

from deployments.protocol import ReplyHead
from router._resume import Transcript, continuation
from tests._ingress import FakeHandle, lexical_garden, serve_router

pytestmark = pytest.mark.unit


def _chunk(stream_id: str, model: str, content: str | None = None, **delta: Any) -> str:
    if content is not None:
        delta["content"] = content
    event = {
        "id": stream_id,
        "object": "chat.completion.chunk",
        "model": model,
        "choices": [{"index": 0, "delta": delta, "finish_reason": None}],
    }
    return f"data: {json.dumps(event)}\n\n"


def test_the_transcript_keeps_the_text_and_the_id() -> None:
    t = Transcript("chat")
    t.feed(_chunk("chatcmpl-1", "law", role="assistant", content=""))
    t.feed(_chunk("chatcmpl-1", "law", "A tort") + _chunk("chatcmpl-1", "law", " is"))
    assert (t.text, t.tokens, t.stream_id, t.resumable) == ("A tort is", 2, "chatcmpl-1", True)
    relabelled = t.relabel(_chunk("chatcmpl-9", "generalist", " a wrong") + "data: [DONE]\n\n")
    events = [e for e in relabelled.split("\n\n") if e]
    assert json.loads(events[0].removeprefix("data: "))["id"] == "chatcmpl-1"
    assert json.loads(events[0].removeprefix("data: "))["model"] == "generalist"
    assert events[1] == "data: [DONE]"


def test_the_continuation_goes_on_from_the_text_so_far() -> None:
    t = Transcript("chat")
    t.feed(_chunk("c", "law", "A tort") + _chunk("c", "law", " is"))
    messages = [{"role": "user", "content": "What is a tort?"}]
    body = {"model": "auto", "messages": messages, "max_tokens": 10, "stream": True}
    assert continuation(body, t) == {
        **body,
        "messages": [*messages, {"role": "assistant", "content": "A tort is"}],
        "max_tokens": 8,
        "continue_final_message": True,
        "add_generation_prompt": False,
    }
    done = {**body, "max_tokens": 2}
    assert continuation(done, t) is None  # it had sent all it was asked for
    c = Transcript("completions")
    c.feed('data: {"id": "cmpl-1", "choices": [{"index": 0, "text": "Once"}]}\n\n')
    assert continuation({"model": "auto", "prompt": "Tell me:"}, c) == {
        "model": "auto",
        "prompt": "Tell me:Once",
    }
    assert continuation({"model": "auto", "prompt": [1, 2]}, c) is None


def test_what_a_text_prefix_cannot_hold_is_not_continued() -> None:
    tools = Transcript("chat")
    tools.feed(_chunk("c", "code", tool_calls=[{"index": 0, "function": {"name": "f"}}]))
    assert continuation({"messages": []}, tools) is None
    several = Transcript("chat")
    several.feed('data: {"id": "c", "choices": [{"index": 1, "delta": {"content": "x"}}]}\n\n')
    assert continuation({"messages": []}, several) is None


class _Dying:
    """A specialist's stream: a head and two tokens, then its replica dies."""

    def __init__(self, body: dict[str, Any]) -> None:
        model = body["model"]
        self.items: list[Any] = [
            ReplyHead(
                200,
                _chunk("chatcmpl-law", model, role="assistant", content="").encode(),
                stream=True,
            ),
            _chunk("chatcmpl-law", model, "A tort"),
            _chunk("chatcmpl-law", model, " is"),
        ]

    def __aiter__(self) -> _Dying:
        return self

    async def __anext__(self) -> Any:
        if not self.items:
            raise ActorDiedError()
        return self.items.pop(0)


class _GoesOn(_Dying):
    """The generalist: it goes on and finishes."""

    def __init__(self, body: dict[str, Any]) -> None:
        model = body["model"]
        self.items = [
            ReplyHead(
                200,
                _chunk("chatcmpl-gen", model, role="assistant", content="").encode(),
                stream=True,
            ),
            _chunk("chatcmpl-gen", model, " a civil wrong."),
            "data: [DONE]\n\n",
        ]

    async def __anext__(self) -> Any:
        if not self.items:
            raise StopAsyncIteration
        return self.items.pop(0)


@pytest.fixture
def served(
    data_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[TestClient, dict[str, FakeHandle]]]:
    replies = {"law": _Dying, "generalist": _GoesOn}
    with serve_router(lexical_garden(data_dir), monkeypatch, replies) as app:
        yield app


def test_a_routed_stream_whose_specialist_dies_goes_on_on_the_generalist(
    served: tuple[TestClient, dict[str, FakeHandle]],
) -> None:
    http, handles = served
    messages = [{"role": "user", "content": "What is a tort in the law of negligence?"}]
    body = {"model": "auto", "messages": messages, "max_tokens": 16, "stream": True}
    with http.stream("POST", "/v1/chat/completions", json=body) as response:
        assert response.headers["x-garden-model"] == "law"
        text = "".join(response.iter_text())
    events = [json.loads(e.removeprefix("data: ")) for e in text.split("\n\n")
              if e.startswith("data: {")]  # fmt: skip
    assert text.rstrip().endswith("data: [DONE]")
    assert "error" not in text
    assert {e["id"] for e in events} == {"chatcmpl-law"}  # one stream, one id
    assert [e["model"] for e in events][-1] == "generalist"
    content = "".join(e["choices"][0]["delta"].get("content") or "" for e in events)
    assert content == "A tort is a civil wrong."
    (continued, _), = handles["generalist"].sent  # fmt: skip
    assert continued["messages"][-1] == {"role": "assistant", "content": "A tort is"}
    assert continued["continue_final_message"] is True
    assert continued["add_generation_prompt"] is False
    # "A tort is": 3 tokens by the generalist's (stand-in) tokenizer, counted once.
    assert handles["generalist"].counted == ["A tort is"]
    assert continued["max_tokens"] == 13


def test_a_named_stream_still_ends_with_an_error_event(
    served: tuple[TestClient, dict[str, FakeHandle]],
) -> None:
    http, handles = served
    body = {"model": "law", "messages": [{"role": "user", "content": "hi"}], "stream": True}
    with http.stream("POST", "/v1/chat/completions", json=body) as response:
        text = "".join(response.iter_text())
    assert "stream interrupted" in text and "[DONE]" not in text
    assert not handles["generalist"].sent


def test_without_a_token_count_the_chunks_stand_in(
    served: tuple[TestClient, dict[str, FakeHandle]], monkeypatch: pytest.MonkeyPatch
) -> None:
    from tests import _ingress

    def fails(self: Any, text: str) -> Any:
        async def count() -> int:
            raise TimeoutError

        return count()

    monkeypatch.setattr(_ingress._TokenCount, "remote", fails)
    http, handles = served
    messages = [{"role": "user", "content": "What is a tort in the law of negligence?"}]
    body = {"model": "auto", "messages": messages, "max_tokens": 16, "stream": True}
    with http.stream("POST", "/v1/chat/completions", json=body) as response:
        text = "".join(response.iter_text())
    assert text.rstrip().endswith("data: [DONE]") and "error" not in text
    (continued, _), = handles["generalist"].sent  # fmt: skip
    assert continued["max_tokens"] == 14  # the two chunks that carried text
