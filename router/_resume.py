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

import json
from typing import Any

from cluster.jsonl import split_records

__all__ = ["Transcript", "continuation"]


class Transcript:
    """What one stream (``endpoint`` ``chat`` or ``completions``) has sent so far."""

    def __init__(self, endpoint: str) -> None:
        self.endpoint = endpoint
        self.stream_id: str | None = None
        self.tokens = 0
        self.resumable = True  # False once it carried something a text prefix cannot hold
        self._parts: list[str] = []

    @property
    def text(self) -> str:
        """The first choice's text so far."""
        return "".join(self._parts)

    def feed(self, chunk: str | bytes) -> None:
        """Read one piece of the stream as the client received it."""
        text = chunk.decode() if isinstance(chunk, bytes) else chunk
        for event in _events(text):
            self.stream_id = self.stream_id or event.get("id")
            for choice in event.get("choices") or ():
                if choice.get("index", 0) != 0:
                    self.resumable = False  # n > 1: several texts interleaved
                    continue
                piece = self._piece(choice)
                if piece:
                    self._parts.append(piece)
                    self.tokens += 1

    def _piece(self, choice: dict[str, Any]) -> str:
        if self.endpoint == "completions":
            return str(choice.get("text") or "")
        delta = choice.get("delta") or {}
        if delta.get("tool_calls"):
            self.resumable = False  # a half-streamed tool call is not a text prefix
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
    body: dict[str, Any], transcript: Transcript, sent_tokens: int | None = None
) -> dict[str, Any] | None:
    """The request that goes on from ``transcript``; None when it cannot be continued.

    ``sent_tokens`` is the tokens of the text so far (default: the chunks
    that carried it).
    """
    if not transcript.resumable:
        return None
    sent = transcript.tokens if sent_tokens is None else sent_tokens
    out = dict(body)
    for key in ("max_tokens", "max_completion_tokens"):
        limit = body.get(key)
        if isinstance(limit, int) and limit > 0:
            left = limit - sent
            if left < 1:
                return None  # it had already sent all it could
            out[key] = left
    text = transcript.text
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
