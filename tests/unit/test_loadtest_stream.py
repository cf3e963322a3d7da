"""SSE parsing and per-request timing of the load test (loadtest/stream.py)."""

from __future__ import annotations

import json

import pytest

from loadtest.stream import SSEEvent, SSEParser, StreamMeter

pytestmark = pytest.mark.unit


def _chunk(content: str = "", usage: dict[str, int] | None = None) -> bytes:
    obj: dict[str, object] = {"model": "law", "choices": []}
    if content:
        obj["choices"] = [{"index": 0, "delta": {"content": content}}]
    if usage is not None:
        obj["usage"] = usage
    return f"data: {json.dumps(obj)}\n\n".encode()


def test_parser_assembles_events_split_at_any_byte() -> None:
    stream = b': keep-alive\r\ndata: {"a": 1}\r\n\r\n'
    stream += b"event: error\ndata: x\ndata: y\n\ndata: [DONE]\n\n"
    for size in (1, 2, 3, 7, len(stream)):
        parser = SSEParser()
        events = []
        for i in range(0, len(stream), size):
            events += parser.feed(stream[i : i + size])
        events += parser.close()
        assert events == [
            SSEEvent('{"a": 1}'),
            SSEEvent("x\ny", "error"),
            SSEEvent("[DONE]"),
        ], size


def test_parser_keeps_a_partial_event_until_close() -> None:
    parser = SSEParser()
    assert parser.feed(b"data: one\n") == []
    assert parser.feed(b"data: two") == []
    assert parser.close() == [SSEEvent("one\ntwo")]
    assert parser.feed(b"\r") == [] and parser.feed(b"\n\n") == []  # \r\n split, no data


def test_meter_times_first_token_inter_token_and_end() -> None:
    meter = StreamMeter(started=10.0)
    meter.feed(_chunk(), 10.05)  # the role chunk: no content
    meter.feed(_chunk("a"), 10.2)
    meter.feed(_chunk("b") + _chunk("c"), 10.3)
    meter.feed(_chunk("d"), 10.5)
    meter.feed(_chunk(usage={"prompt_tokens": 7, "completion_tokens": 4}), 10.51)
    meter.feed(b"data: [DONE]\n\n", 10.52)
    meter.close(10.6)
    record = meter.record(200, 10.6, start_epoch=1.0e9)
    assert record.ok and record.error is None and record.model == "law"
    assert record.ttft_ms == pytest.approx(200)
    assert record.tpot_ms == pytest.approx(300 / 3)  # (10.5 - 10.2) s over 3 gaps
    assert record.e2e_ms == pytest.approx(600)
    assert (record.output_tokens, record.prompt_tokens) == (4, 7)


def test_meter_counts_content_chunks_without_usage() -> None:
    meter = StreamMeter(started=0.0)
    for i, t in enumerate((0.1, 0.2, 0.3)):
        meter.feed(_chunk(f"t{i}"), t)
    meter.feed(b"data: [DONE]\n\n", 0.3)
    record = meter.record(200, 0.3, 0.0)
    assert record.ok and record.output_tokens == 3
    assert record.tpot_ms == pytest.approx(100)


def test_one_token_has_no_tpot() -> None:
    meter = StreamMeter(started=0.0)
    meter.feed(_chunk("only") + b"data: [DONE]\n\n", 0.1)
    record = meter.record(200, 0.1, 0.0)
    assert record.ok and record.output_tokens == 1 and record.tpot_ms is None


@pytest.mark.parametrize(
    ("body", "status", "error"),
    [
        (_chunk("a"), 200, "stream ended without [DONE]"),
        (_chunk("a") + b"event: error\ndata: boom\n\ndata: [DONE]\n\n", 200, "error event: boom"),
        (b'data: {"error": {"message": "died"}}\n\ndata: [DONE]\n\n', 200, "error in stream"),
        (b"data: not json\n\n", 200, "bad JSON"),
        (b"data: [DONE]\n\n", 429, "HTTP 429"),
    ],
)
def test_failures(body: bytes, status: int, error: str) -> None:
    meter = StreamMeter(started=0.0)
    meter.feed(body, 0.1)
    meter.close(0.2)
    record = meter.record(status, 0.2, 0.0)
    assert not record.ok
    assert record.error is not None and record.error.startswith(error)


def test_nothing_after_done_counts() -> None:
    meter = StreamMeter(started=0.0)
    meter.feed(_chunk("a") + b"data: [DONE]\n\n" + _chunk("late"), 0.1)
    record = meter.record(200, 0.1, 0.0)
    assert record.ok and record.output_tokens == 1
