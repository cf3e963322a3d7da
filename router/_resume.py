"""Mid-stream continuation: a routed stream whose specialist dies goes on on the generalist.

Bytes already reached the client, so the request cannot simply be sent
again. Instead :class:`Transcript` keeps what a routed stream has sent (only
routed streams pay for it: one JSON parse per chunk), and at the switch
:func:`continuation` asks the generalist to go on from there: the
conversation plus the assistant text so far, with vLLM's
``continue_final_message: true`` and ``add_generation_prompt: false`` (for
completions, the prompt plus the text so far), and ``max_tokens`` less the
tokens already sent. :meth:`Transcript.relabel` then gives the new chunks
the stream's own ``id``, so the client sees one stream ending in ``[DONE]``;
their ``model`` names the generalist.

Tokens already sent are counted once, at the switch, with the generalist
replica's tokenizer (the router passes the count to :func:`continuation`),
not per chunk: Ray Serve LLM batches several tokens into a chunk, so chunks
would understate them. Only when that count cannot be had does the number
of chunks that carried text stand in.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncGenerator, AsyncIterator, Mapping
from typing import Any

from cluster.jsonl import split_records

__all__ = ["Transcript", "continuation", "continuations", "merge"]


class Transcript:
    """What one stream (``endpoint`` ``chat`` or ``completions``, ``n`` choices) has sent so far."""

    def __init__(self, endpoint: str, n: int = 1) -> None:
        self.endpoint = endpoint
        self.n = n
        self.stream_id: str | None = None
        self.resumable = True  # False once it carried something a text prefix cannot hold
        self._parts: dict[int, list[str]] = {}
        self._chunks: dict[int, int] = {}
        #: Choices whose finish_reason was sent: nothing of theirs is left to continue.
        self.finished: set[int] = set()

    @property
    def text(self) -> str:
        """The first choice's text so far."""
        return self.text_of(0)

    @property
    def tokens(self) -> int:
        """Chunks that carried text of the first choice (a token each, at least)."""
        return self._chunks.get(0, 0)

    def text_of(self, index: int) -> str:
        """Choice ``index``'s text so far."""
        return "".join(self._parts.get(index, ()))

    def chunks_of(self, index: int) -> int:
        """Chunks that carried text of choice ``index``."""
        return self._chunks.get(index, 0)

    def feed(self, chunk: str | bytes) -> None:
        """Read one piece of the stream as the client received it."""
        text = chunk.decode() if isinstance(chunk, bytes) else chunk
        for event in _events(text):
            self.stream_id = self.stream_id or event.get("id")
            for choice in event.get("choices") or ():
                index = choice.get("index", 0)
                if not isinstance(index, int) or not 0 <= index < self.n:
                    self.resumable = False  # not a choice the request asked for
                    continue
                piece = self._piece(choice)
                if piece:
                    self._parts.setdefault(index, []).append(piece)
                    self._chunks[index] = self._chunks.get(index, 0) + 1
                if choice.get("finish_reason"):
                    self.finished.add(index)

    def _piece(self, choice: dict[str, Any]) -> str:
        if self.endpoint == "completions":
            return str(choice.get("text") or "")
        delta = choice.get("delta") or {}
        if delta.get("tool_calls"):
            # A half-streamed tool call is the parser's output, not text the
            # model can go on from: no continuation can give the rest of it.
            self.resumable = False
        return str(delta.get("content") or "")

    def relabel(self, chunk: str | bytes) -> str:
        """A chunk of the continuation, carrying this stream's ``id``."""
        text = chunk.decode() if isinstance(chunk, bytes) else chunk
        if self.stream_id is None or '"id"' not in text:
            return text
        out = []
        for line in text.split("\n"):  # blank lines (the event ends) kept as they are
            data = line.removeprefix("data: ")
            if data == line or data.strip() == "[DONE]":
                out.append(line)
                continue
            try:
                event = json.loads(data)
            except json.JSONDecodeError:
                out.append(line)
                continue
            if isinstance(event, dict) and "id" in event:
                event["id"] = self.stream_id
            out.append("data: " + json.dumps(event, separators=(",", ":")))
        return "\n".join(out)


def _events(text: str) -> list[dict[str, Any]]:
    events = []
    for line in split_records(text):
        data = line.removeprefix("data: ").strip()
        if data == line.strip() or not data or data == "[DONE]":
            continue
        try:
            event = json.loads(data)
        except json.JSONDecodeError:
            continue
        if isinstance(event, dict):
            events.append(event)
    return events


def continuation(
    body: dict[str, Any],
    transcript: Transcript,
    sent_tokens: int | None = None,
    index: int = 0,
) -> dict[str, Any] | None:
    """The request that goes on from choice ``index`` of ``transcript``; None when it cannot.

    ``sent_tokens`` is the tokens of that choice's text so far (default: the
    chunks that carried it). The request asks for one choice (``n`` 1).
    """
    if not transcript.resumable:
        return None
    sent = transcript.chunks_of(index) if sent_tokens is None else sent_tokens
    out = dict(body)
    if transcript.n > 1:
        out["n"] = 1
    for key in ("max_tokens", "max_completion_tokens"):
        limit = body.get(key)
        if isinstance(limit, int) and limit > 0:
            left = limit - sent
            if left < 1:
                return None  # it had already sent all it could
            out[key] = left
    text = transcript.text_of(index)
    if not text:
        return out  # nothing but a role chunk reached the client: start again
    if transcript.endpoint == "completions":
        prompt = body.get("prompt")
        if not isinstance(prompt, str):
            return None
        out["prompt"] = prompt + text
        return out
    messages = body.get("messages")
    if not isinstance(messages, list):
        return None
    out["messages"] = [*messages, {"role": "assistant", "content": text}]
    out["continue_final_message"] = True
    out["add_generation_prompt"] = False
    return out


def continuations(
    body: dict[str, Any], transcript: Transcript, sent_tokens: Mapping[int, int | None]
) -> dict[int, dict[str, Any]] | None:
    """One request per choice still open (``n`` > 1 gives several); None when any cannot go on.

    ``sent_tokens[i]`` is the tokens choice ``i`` sent (None: its chunks
    stand in). Choices that sent their ``finish_reason`` are left out, so
    the result may be empty: the stream only lacks its end.
    """
    if not transcript.resumable:
        return None
    out = {}
    for index in range(transcript.n):
        if index in transcript.finished or _exhausted(body, transcript, sent_tokens, index):
            continue  # nothing of it is left to send
        request = continuation(body, transcript, sent_tokens.get(index), index)
        if request is None:
            return None
        seed = body.get("seed")
        if transcript.n > 1 and isinstance(seed, int) and not isinstance(seed, bool):
            request["seed"] = seed + index  # one seed for all: open choices would be twins
        out[index] = request
    return out


def _exhausted(
    body: dict[str, Any], transcript: Transcript, sent_tokens: Mapping[int, int | None], index: int
) -> bool:
    """True when choice ``index`` already sent all the tokens it was asked for."""
    counted = sent_tokens.get(index)
    sent = transcript.chunks_of(index) if counted is None else counted
    limits = [body.get(k) for k in ("max_tokens", "max_completion_tokens")]
    return any(isinstance(v, int) and v > 0 and sent >= v for v in limits)


def _rewrite(piece: str, stream_id: str | None, index: int) -> tuple[str, list[dict[str, Any]]]:
    """``piece`` of one choice's continuation as the client's stream: its id and index.

    Returns the rewritten events (``[DONE]`` and usage-only chunks left out)
    and the usage-only chunks, which :func:`merge` sums into one. Lines that
    are not JSON events (SSE comments) are dropped.
    """
    out, usage = [], []
    for event in _events(piece):
        if event.get("choices") == [] and "usage" in event:
            usage.append(event)
            continue
        if stream_id is not None and "id" in event:
            event["id"] = stream_id
        for choice in event.get("choices") or ():
            choice["index"] = index
        out.append("data: " + json.dumps(event, separators=(",", ":")) + "\n\n")
    return "".join(out), usage


def _summed(usages: list[dict[str, Any]], stream_id: str | None) -> str:
    total: dict[str, int] = {}
    for event in usages:
        for key, value in (event.get("usage") or {}).items():
            if isinstance(value, int):
                total[key] = total.get(key, 0) + value
    last = dict(usages[-1])
    last["usage"] = total
    if stream_id is not None:
        last["id"] = stream_id
    return "data: " + json.dumps(last, separators=(",", ":")) + "\n\n"


async def merge(
    streams: Mapping[int, AsyncIterator[str | bytes]], stream_id: str | None
) -> AsyncGenerator[str, None]:
    """The continuations of several choices as one stream, as their pieces arrive.

    Each piece gets the stream's ``id`` and its choice's ``index``; the
    streams' own ``[DONE]`` events are dropped and their usage chunks summed
    into one, sent last before the one ``[DONE]`` (every continuation's
    prompt counts: it is what the engines read). A stream that fails raises
    here, and the others are cancelled and awaited, as one stream would.
    """
    pending: dict[asyncio.Future[str | bytes], tuple[int, AsyncIterator[str | bytes]]] = {
        asyncio.ensure_future(anext(stream)): (index, stream) for index, stream in streams.items()
    }
    usages: list[dict[str, Any]] = []
    try:
        while pending:
            done, _ = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
            for future in done:
                index, stream = pending.pop(future)
                try:
                    item = future.result()  # a stream's failure is raised here
                except StopAsyncIteration:
                    continue
                pending[asyncio.ensure_future(anext(stream))] = (index, stream)
                text = item.decode() if isinstance(item, bytes) else item
                rewritten, usage = _rewrite(text, stream_id, index)
                usages += usage
                if rewritten:
                    yield rewritten
        if usages:
            yield _summed(usages, stream_id)
        yield "data: [DONE]\n\n"
    finally:
        for future in pending:
            future.cancel()
        # Collected, so a second failure is not logged as never retrieved.
        await asyncio.gather(*pending, return_exceptions=True)
