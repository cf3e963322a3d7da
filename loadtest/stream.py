"""Measuring one streamed OpenAI chat completion: SSE parsing and per-request timings.

:class:`SSEParser` turns received bytes, in whatever pieces the network
delivers them, into Server-Sent Events. :class:`StreamMeter` watches those
events with the time each arrived and produces a :class:`RequestRecord`:

* ``ttft_ms``: request start to the first chunk with non-empty content
  (``delta.content``, ``delta.reasoning_content`` or a completion's ``text``);
* ``tpot_ms``: (last content chunk - first content chunk) / (output tokens - 1),
  the mean inter-token time, as vLLM's benchmark defines it (None below 2 tokens);
* ``e2e_ms``: request start to the end of the stream;
* ``output_tokens``: ``usage.completion_tokens`` when the server sends usage
  (``stream_options.include_usage``), else the number of content chunks.

A request succeeds when its status is 2xx, the stream ends with
``data: [DONE]``, and no ``error`` event (``event: error``, or a data
object with an ``error`` key) came before. Anything else is a failure
with a short ``error`` text.

Pure standard library: the locustfile uses this inside a gevent-patched
Locust process.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Any

__all__ = ["RequestRecord", "SSEEvent", "SSEParser", "StreamMeter"]

DONE = "[DONE]"


@dataclass(frozen=True, slots=True)
class SSEEvent:
    """One Server-Sent Event: its ``event:`` name (``message`` by default) and data."""

    data: str
    event: str = "message"


class SSEParser:
    """Incremental SSE parser (the WHATWG event-stream rules that OpenAI servers use).

    :meth:`feed` takes the next received bytes and returns the events they
    completed; a partial event or line waits for more bytes. Lines end with
    ``\\n``, ``\\r\\n`` or ``\\r``; a blank line ends an event; several
    ``data:`` lines join with ``\\n``; ``:`` comments and events without data
    are dropped.
    """

    def __init__(self) -> None:
        self._buffer = b""
        self._data: list[str] = []
        self._event = ""

    def feed(self, chunk: bytes) -> list[SSEEvent]:
        """The events completed by ``chunk``."""
        self._buffer += chunk
        events: list[SSEEvent] = []
        while True:
            cut = _line_end(self._buffer)
            if cut is None:
                return events
            end, skip = cut
            line = self._buffer[:end].decode("utf-8", errors="replace")
            self._buffer = self._buffer[end + skip :]
            event = self._line(line)
            if event is not None:
                events.append(event)

    def close(self) -> list[SSEEvent]:
        """Events still pending when the stream ended (an unterminated last event)."""
        events = self.feed(b"\n") if self._buffer else []
        if self._data:
            events.append(SSEEvent("\n".join(self._data), self._event or "message"))
            self._data, self._event = [], ""
        return events

    def _line(self, line: str) -> SSEEvent | None:
        if not line:
            if not self._data:
                self._event = ""
                return None
            event = SSEEvent("\n".join(self._data), self._event or "message")
            self._data, self._event = [], ""
            return event
        if line.startswith(":"):
            return None
        name, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if name == "data":
            self._data.append(value)
        elif name == "event":
            self._event = value
        return None


def _line_end(buffer: bytes) -> tuple[int, int] | None:
    """(index, length) of the first line terminator, or None if none is complete yet."""
    newline, carriage = buffer.find(b"\n"), buffer.find(b"\r")
    if carriage == -1 or -1 < newline < carriage:
        return None if newline == -1 else (newline, 1)
    if carriage + 1 == len(buffer):  # maybe the first half of \r\n
        return None
    return carriage, 2 if buffer[carriage + 1] == 0x0A else 1


@dataclass(slots=True)
class RequestRecord:
    """One request's outcome; one JSON line of the records file."""

    start: float  # epoch seconds
    ok: bool
    status: int
    error: str | None = None
    prompt_domain: str | None = None
    model: str | None = None  # x-garden-model, else the chunks' "model"
    reason: str | None = None  # x-garden-reason (absent for an explicit model)
    domain: str | None = None  # x-garden-domain
    fallback_from: str | None = None
    ttft_ms: float | None = None
    tpot_ms: float | None = None
    e2e_ms: float | None = None
    output_tokens: int = 0
    prompt_tokens: int | None = None
    turn: int = 1  # the turn of a multi-turn chat (1: its first request)

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready."""
        return asdict(self)


@dataclass
class StreamMeter:
    """Times one streaming response; ``started`` and the ``now`` values share one clock."""

    started: float
    first_content: float | None = None
    last_content: float | None = None
    content_chunks: int = 0
    completion_tokens: int | None = None
    prompt_tokens: int | None = None
    model: str | None = None
    done: bool = False
    error: str | None = None
    #: The first choice's content, in pieces (a multi-turn user sends it back).
    pieces: list[str] = field(default_factory=list)
    _parser: SSEParser = field(default_factory=SSEParser)

    @property
    def text(self) -> str:
        """The first choice's content streamed so far."""
        return "".join(self.pieces)

    def feed(self, chunk: bytes, now: float) -> None:
        """Bytes received at ``now``."""
        for event in self._parser.feed(chunk):
            self._on_event(event, now)

    def close(self, now: float) -> None:
        """The connection ended at ``now``."""
        for event in self._parser.close():
            self._on_event(event, now)

    def _on_event(self, event: SSEEvent, now: float) -> None:
        if self.done or self.error is not None:
            return  # nothing after [DONE] or an error counts
        if event.event == "error":
            self.error = f"error event: {event.data[:200]}"
            return
        if event.data.strip() == DONE:
            self.done = True
            return
        try:
            obj = json.loads(event.data)
        except json.JSONDecodeError:
            self.error = f"bad JSON in stream: {event.data[:200]!r}"
            return
        if not isinstance(obj, dict):
            self.error = f"unexpected stream data: {event.data[:200]!r}"
            return
        if "error" in obj:
            self.error = f"error in stream: {json.dumps(obj['error'])[:200]}"
            return
        self.model = self.model or obj.get("model")
        if _has_content(obj):
            self.pieces.append(_content(obj))
            self.first_content = self.first_content or now
            self.last_content = now
            self.content_chunks += 1
        usage = obj.get("usage")
        if isinstance(usage, dict) and "completion_tokens" in usage:
            self.completion_tokens = int(usage["completion_tokens"])
            self.prompt_tokens = usage.get("prompt_tokens")

    def record(self, status: int, now: float, start_epoch: float) -> RequestRecord:
        """The outcome of the finished stream (call :meth:`close` first)."""
        tokens = self.completion_tokens
        if tokens is None:
            tokens = self.content_chunks
        record = RequestRecord(
            start=start_epoch,
            ok=False,
            status=status,
            model=self.model,
            e2e_ms=(now - self.started) * 1000,
            output_tokens=tokens,
            prompt_tokens=self.prompt_tokens,
        )
        if self.first_content is not None:
            record.ttft_ms = (self.first_content - self.started) * 1000
        if self.first_content is not None and self.last_content is not None and tokens >= 2:
            record.tpot_ms = (self.last_content - self.first_content) * 1000 / (tokens - 1)
        if not 200 <= status < 300:
            record.error = f"HTTP {status}"
        elif self.error is not None:
            record.error = self.error
        elif not self.done:
            record.error = "stream ended without [DONE]"
        else:
            record.ok = True
        return record


def _content(obj: dict[str, Any]) -> str:
    for choice in obj.get("choices") or ():
        if isinstance(choice, dict) and choice.get("index", 0) == 0:
            delta = choice.get("delta") or {}
            return str(choice.get("text") or delta.get("content") or "")
    return ""


def _has_content(obj: dict[str, Any]) -> bool:
    for choice in obj.get("choices") or ():
        if not isinstance(choice, dict):
            continue
        delta = choice.get("delta") or {}
        if choice.get("text") or delta.get("content") or delta.get("reasoning_content"):
            return True
    return False
