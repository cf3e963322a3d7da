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
from router._resume import Transcript, continuation, continuations, merge
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

    def cancel(self) -> None:
        """As Serve's response generator: cancel the request (a no-op once it ended)."""
        self.items.clear()


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


def _choices(stream_id: str, model: str, *choices: tuple[int, str | None, str | None]) -> str:
    """One chunk carrying ``(index, content, finish_reason)`` for several choices."""
    event = {
        "id": stream_id,
        "object": "chat.completion.chunk",
        "model": model,
        "choices": [
            {"index": i, "delta": {"content": c} if c is not None else {}, "finish_reason": f}
            for i, c, f in choices
        ],
    }
    return f"data: {json.dumps(event)}\n\n"


def test_each_of_several_choices_goes_on_from_its_own_text() -> None:
    t = Transcript("chat", n=3)
    t.feed(_choices("c", "law", (0, "A tort", None), (1, "Torts", None), (2, "No.", "stop")))
    t.feed(_choices("c", "law", (0, " is", None)))
    assert (t.text_of(0), t.text_of(1), t.text_of(2)) == ("A tort is", "Torts", "No.")
    assert t.finished == {2} and t.resumable
    body = {"messages": [{"role": "user", "content": "q"}], "n": 3, "max_tokens": 10}
    got = continuations(body, t, {0: 3, 1: None})
    assert got is not None and set(got) == {0, 1}  # choice 2 had finished
    assert got[0]["n"] == got[1]["n"] == 1
    assert got[0]["messages"][-1] == {"role": "assistant", "content": "A tort is"}
    assert got[1]["messages"][-1] == {"role": "assistant", "content": "Torts"}
    assert (got[0]["max_tokens"], got[1]["max_tokens"]) == (7, 9)  # 3 counted; 1 chunk
    t.feed(_choices("c", "law", (0, None, "length"), (1, None, "stop")))
    assert continuations(body, t, {}) == {}  # every choice ended: only [DONE] is missing
    odd = Transcript("chat", n=2)
    odd.feed(_choices("c", "law", (5, "x", None)))  # an index the request did not ask for
    assert continuations(body, odd, {}) is None


def test_merged_continuations_are_one_stream() -> None:
    import asyncio

    async def stream(*pieces: str) -> Any:
        for piece in pieces:
            await asyncio.sleep(0)
            yield piece

    def usage(prompt: int, completion: int) -> str:
        event = {"id": "gen", "choices": [], "usage": {"prompt_tokens": prompt,
                 "completion_tokens": completion, "total_tokens": prompt + completion}}  # fmt: skip
        return f"data: {json.dumps(event)}\n\n"

    async def collect() -> str:
        streams = {
            0: stream(
                _choices("gen-a", "generalist", (0, " a wrong.", "stop")),
                usage(9, 3),
                "data: [DONE]\n\n",
            ),
            1: stream(
                _choices("gen-b", "generalist", (0, " are civil.", "stop")),
                usage(8, 2),
                "data: [DONE]\n\n",
            ),
        }
        return "".join([piece async for piece in merge(streams, "chatcmpl-law")])

    text = asyncio.run(collect())
    events = [json.loads(e.removeprefix("data: ")) for e in text.split("\n\n")
              if e.startswith("data: {")]  # fmt: skip
    assert text.count("[DONE]") == 1 and text.rstrip().endswith("data: [DONE]")
    assert {e["id"] for e in events} == {"chatcmpl-law"}
    by_index = {e["choices"][0]["index"]: e["choices"][0]["delta"]["content"]
                for e in events if e["choices"]}  # fmt: skip
    assert by_index == {0: " a wrong.", 1: " are civil."}
    assert events[-1]["usage"] == {"prompt_tokens": 17, "completion_tokens": 5, "total_tokens": 22}


class _DyingTwo(_Dying):
    """A specialist's two-choice stream: a token for each, then its replica dies."""

    def __init__(self, body: dict[str, Any]) -> None:
        model = body["model"]
        self.items = [
            ReplyHead(200, _chunk("chatcmpl-law", model, role="assistant").encode(), stream=True),
            _choices("chatcmpl-law", model, (0, "A tort", None), (1, "Torts", None)),
        ]


def _routed_stream(
    data_dir: Path, monkeypatch: pytest.MonkeyPatch, specialist: type[_Dying], **extra: Any
) -> tuple[str, dict[str, FakeHandle]]:
    """One routed stream on the in-process router whose ``law`` replies as ``specialist``."""
    replies = {"law": specialist, "generalist": _GoesOn}
    with serve_router(lexical_garden(data_dir), monkeypatch, replies) as (http, handles):
        messages = [{"role": "user", "content": "What is a tort in the law of negligence?"}]
        body = {"model": "auto", "messages": messages, "max_tokens": 16, "stream": True, **extra}
        with http.stream("POST", "/v1/chat/completions", json=body) as response:
            assert response.headers["x-garden-model"] == "law"
            return "".join(response.iter_text()), handles


def test_a_routed_stream_of_two_choices_goes_on_as_one_stream(
    data_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    text, handles = _routed_stream(data_dir, monkeypatch, _DyingTwo, n=2)
    assert text.rstrip().endswith("data: [DONE]") and text.count("[DONE]") == 1
    assert "error" not in text
    events = [json.loads(e.removeprefix("data: ")) for e in text.split("\n\n")
              if e.startswith("data: {")]  # fmt: skip
    assert {e["id"] for e in events} == {"chatcmpl-law"}
    content: dict[int, str] = {}
    for event in events:
        for choice in event["choices"]:
            piece = choice["delta"].get("content") or ""
            content[choice["index"]] = content.get(choice["index"], "") + piece
    assert content == {0: "A tort a civil wrong.", 1: "Torts a civil wrong."}
    sent = sorted(b["messages"][-1]["content"] for b, _ in handles["generalist"].sent)
    assert sent == ["A tort", "Torts"]
    assert all(b["n"] == 1 for b, _ in handles["generalist"].sent)


class _DiesAfterItsEnd(_Dying):
    """A specialist that sent its finish_reason, then died before [DONE]."""

    def __init__(self, body: dict[str, Any]) -> None:
        super().__init__(body)
        self.items.append(_choices("chatcmpl-law", body["model"], (0, None, "stop")))


def test_a_stream_that_had_finished_only_gets_its_end(
    data_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    text, handles = _routed_stream(data_dir, monkeypatch, _DiesAfterItsEnd)
    assert text.rstrip().endswith("data: [DONE]") and "error" not in text
    assert "civil wrong" not in text  # nothing after its finish_reason
    assert not handles["generalist"].sent


def test_a_failing_continuation_fails_the_merged_stream_and_stops_the_others() -> None:
    import asyncio

    stopped: list[int] = []

    async def endless(index: int) -> Any:
        try:
            while True:
                await asyncio.sleep(0.01)
                yield _choices("gen", "generalist", (0, "x", None))
        finally:
            stopped.append(index)

    async def dies() -> Any:
        yield _choices("gen", "generalist", (0, "y", None))
        raise ActorDiedError()

    async def collect(streams: dict[int, Any]) -> list[str]:
        return [piece async for piece in merge(streams, "c")]

    with pytest.raises(ActorDiedError):
        asyncio.run(collect({0: endless(0), 1: dies()}))
    assert stopped == [0]  # cancelled and awaited, not left running
    assert asyncio.run(collect({})) == ["data: [DONE]\n\n"]
