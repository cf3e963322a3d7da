"""Headers, span and metrics of a routed request tell the same story."""

from __future__ import annotations

import json
from typing import Any

import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from router import semconv
from router._telemetry import (
    RouteTelemetry,
    explanation_headers,
    trace_carrier,
    trace_parent,
    usage_of,
)
from router.policy import Decision, Features, Reason

pytestmark = pytest.mark.unit


class RecordingMetrics:
    def __init__(self) -> None:
        self.records: list[tuple[Decision, float]] = []
        self.answers: list[tuple[object, ...]] = []

    def record(self, decision: Decision, decision_seconds: float) -> None:
        self.records.append((decision, decision_seconds))

    def resumed(self, model: str, failed: str) -> None:
        self.records.append((Decision(model, "", 0.0, Reason.SPECIALIST_ERROR, failed), 0.0))

    def key_usage(self, *_: object) -> None:
        pass

    def rate_limited(self, *_: object) -> None:
        pass

    def answered(self, *args: object) -> None:
        self.answers.append(args)


def _telemetry(**options: Any) -> tuple[RouteTelemetry, InMemorySpanExporter, RecordingMetrics]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    metrics = RecordingMetrics()
    return RouteTelemetry(provider, metrics, **options), exporter, metrics


def test_fallback_is_explained_the_same_everywhere() -> None:
    telemetry, exporter, metrics = _telemetry()
    decision = Decision("generalist", "law", 0.93, Reason.FIRST_TOKEN_DEADLINE, "law")
    traced = telemetry.start("chat", "auto", True, "req-1")
    telemetry.routed(traced, Features("law", 0.93, {"law": 0.93}, "lexical"), decision, 0.002)
    traced.finish(status=200, usage=(12, 8))

    headers = explanation_headers(decision)
    (finished,) = exporter.get_finished_spans()
    attrs = dict(finished.attributes or {})
    assert finished.name == "chat auto"
    assert headers[semconv.HEADER_MODEL] == attrs[semconv.ATTR_RESPONSE_MODEL] == "generalist"
    assert headers[semconv.HEADER_REASON] == attrs[semconv.ATTR_REASON] == "first_token_deadline"
    assert headers[semconv.HEADER_DOMAIN] == attrs[semconv.ATTR_DOMAIN] == "law"
    assert headers[semconv.HEADER_FALLBACK_FROM] == attrs[semconv.ATTR_FALLBACK_FROM] == "law"
    confidence = attrs[semconv.ATTR_CONFIDENCE]
    assert float(headers[semconv.HEADER_CONFIDENCE]) == pytest.approx(confidence)
    assert attrs[semconv.ATTR_REQUEST_MODEL] == "auto"
    assert attrs[semconv.ATTR_REQUEST_ID] == "req-1"
    assert (attrs[semconv.ATTR_USAGE_INPUT_TOKENS], attrs[semconv.ATTR_USAGE_OUTPUT_TOKENS]) == (
        12,
        8,
    )
    assert metrics.records == [(decision, 0.002)]


def test_a_cooldown_is_named_on_the_span() -> None:
    telemetry, exporter, _ = _telemetry()
    decision = Decision("generalist", "law", 0.93, Reason.UNHEALTHY, "law")
    for cooldown in (True, False):
        traced = telemetry.start("chat", "auto", True, "req-1")
        telemetry.routed(traced, None, decision, 0.001, cooldown=cooldown)
        traced.finish(status=200, usage=None)
    first, second = (dict(s.attributes or {}) for s in exporter.get_finished_spans())
    assert first[semconv.ATTR_REASON] == "unhealthy" and first[semconv.ATTR_COOLDOWN] is True
    assert semconv.ATTR_COOLDOWN not in second


def test_no_fallback_header_without_a_fallback() -> None:
    decision = Decision("code", "code", 0.99, Reason.SPECIALIST)
    assert semconv.HEADER_FALLBACK_FROM not in explanation_headers(decision)


def test_server_errors_mark_the_span() -> None:
    telemetry, exporter, _ = _telemetry()
    traced = telemetry.start("completions", "law", False, "")
    traced.finish(status=503, usage=None, error="no replica", error_type="model_unavailable")
    traced.finish(status=200, usage=None)  # only the first call counts
    (finished,) = exporter.get_finished_spans()
    assert finished.status.description == "no replica"
    assert finished.name == "text_completion law"
    assert dict(finished.attributes or {})[semconv.ATTR_ERROR_TYPE] == "model_unavailable"


@pytest.mark.parametrize(
    ("payload", "usage"),
    [
        (b'{"id": "x", "usage": {"prompt_tokens": 3, "completion_tokens": 5}}', (3, 5)),
        ('data: {"usage": {"prompt_tokens": 7, "completion_tokens": 2}}\n\n', (7, 2)),
        ('data: {"choices": [{"delta": {"content": "hi"}}]}\n\n', None),
        ("data: [DONE]\n\n", None),
        ('data: {"usage": null}\n\n', None),
    ],
)
def test_usage_is_read_from_bodies_and_chunks(payload: bytes | str, usage: object) -> None:
    assert usage_of(payload) == usage


CLIENT_TRACE = "0af7651916cd43dd8448eb211c80319c"
CLIENT_SPAN = "b7ad6b7169203331"


def test_the_span_is_a_child_of_the_clients_trace_and_passes_it_on() -> None:
    telemetry, exporter, _ = _telemetry()
    parent = trace_parent(
        {"traceparent": f"00-{CLIENT_TRACE}-{CLIENT_SPAN}-01", "tracestate": "vendor=1"}
    )
    traced = telemetry.start("chat", "law", False, "r", parent=parent)
    carrier = trace_carrier(traced.span)
    traced.finish(status=200, usage=None)
    (finished,) = exporter.get_finished_spans()
    assert f"{finished.context.trace_id:032x}" == CLIENT_TRACE
    assert finished.parent is not None and f"{finished.parent.span_id:016x}" == CLIENT_SPAN
    # The replica gets this span as its parent, in the same trace, with the state.
    assert carrier["traceparent"] == f"00-{CLIENT_TRACE}-{finished.context.span_id:016x}-01"
    assert carrier["tracestate"] == "vendor=1"
    # Without a traceparent the span starts a trace of its own.
    own = telemetry.start("chat", "law", False, "r", parent=trace_parent({}))
    own.finish(status=200, usage=None)
    assert exporter.get_finished_spans()[-1].parent is None


def test_genai_attributes_and_metrics_of_a_stream() -> None:
    telemetry, exporter, metrics = _telemetry(server=("127.0.0.1", 8000))
    body = {"model": "auto", "max_tokens": 16, "temperature": 0.2, "stop": "\n", "seed": 7,
            "messages": [{"role": "user", "content": "secret question"}]}  # fmt: skip
    traced = telemetry.start("chat", "auto", True, "r", body=body)
    telemetry.routed(traced, None, Decision("law", "law", 0.9, Reason.SPECIALIST), 0.001)
    first = {"id": "chatcmpl-42", "choices": [{"index": 0, "delta": {"content": "hi"},
             "finish_reason": None}]}  # fmt: skip
    last = {"id": "chatcmpl-42", "choices": [{"index": 0, "delta": {}, "finish_reason": "length"}]}
    traced.observe(f"data: {json.dumps(first)}\n\n", first=True)
    traced.observe(f"data: {json.dumps(last)}\n\n")
    traced.finish(status=200, usage=(5, 16))
    attrs = dict(exporter.get_finished_spans()[0].attributes or {})
    assert attrs[semconv.ATTR_RESPONSE_ID] == "chatcmpl-42"
    assert list(attrs[semconv.ATTR_FINISH_REASONS]) == ["length"]
    assert attrs["gen_ai.request.max_tokens"] == 16 and attrs["gen_ai.request.seed"] == 7
    assert attrs["gen_ai.request.temperature"] == 0.2
    assert list(attrs["gen_ai.request.stop_sequences"]) == ["\n"]
    assert (attrs[semconv.ATTR_SERVER_ADDRESS], attrs[semconv.ATTR_SERVER_PORT]) == (
        "127.0.0.1",
        8000,
    )
    assert semconv.ATTR_ERROR_TYPE not in attrs
    # No prompt or answer text without telemetry.record_content.
    assert not any("secret" in str(v) for v in attrs.values())
    ((operation, models, seconds, ttft, usage, error_type),) = metrics.answers
    assert (operation, models, usage, error_type) == ("chat", ("auto", "law"), (5, 16), None)
    assert 0 <= ttft <= seconds


def test_content_is_recorded_only_when_asked() -> None:
    telemetry, exporter, metrics = _telemetry(record_content=True)
    body = {"model": "law", "messages": [{"role": "user", "content": "secret question"}]}
    traced = telemetry.start("chat", "law", False, "r", body=body)
    answer = {"id": "c-1", "choices": [{"message": {"content": "secret answer"},
              "finish_reason": "stop"}]}  # fmt: skip
    traced.output(json.dumps(answer).encode())
    traced.finish(status=200, usage=(3, 2))
    attrs = dict(exporter.get_finished_spans()[0].attributes or {})
    assert "secret question" in attrs[semconv.ATTR_INPUT_MESSAGES]
    assert "secret answer" in attrs[semconv.ATTR_OUTPUT_MESSAGES]
    assert list(attrs[semconv.ATTR_FINISH_REASONS]) == ["stop"]
    assert metrics.answers[0][3] is None  # not streamed: no time to first token


def test_responses_finish_reasons_and_errors() -> None:
    telemetry, exporter, metrics = _telemetry()
    traced = telemetry.start("responses", "auto", True, "r")
    created = {"type": "response.created", "response": {"id": "resp_1", "status": "in_progress"}}
    done = {"type": "response.incomplete", "response": {"id": "resp_1", "status": "incomplete",
            "incomplete_details": {"reason": "max_output_tokens"}}}  # fmt: skip
    traced.observe(f"event: response.created\ndata: {json.dumps(created)}\n\n", first=True)
    traced.observe(f"event: response.incomplete\ndata: {json.dumps(done)}\n\n")
    traced.finish(status=200, usage=(4, 8), error="stream interrupted: RayActorError",
                  error_type="RayActorError")  # fmt: skip
    finished = exporter.get_finished_spans()[0]
    attrs = dict(finished.attributes or {})
    assert attrs[semconv.ATTR_RESPONSE_ID] == "resp_1"
    assert list(attrs[semconv.ATTR_FINISH_REASONS]) == ["max_output_tokens"]
    assert attrs[semconv.ATTR_ERROR_TYPE] == "RayActorError"
    assert metrics.answers[0][5] == "RayActorError"
