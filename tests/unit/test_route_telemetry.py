"""Headers, span and metrics of a routed request tell the same story."""

from __future__ import annotations

import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from router import semconv
from router._telemetry import RouteTelemetry, explanation_headers, usage_of
from router.policy import Decision, Features, Reason

pytestmark = pytest.mark.unit


class RecordingMetrics:
    def __init__(self) -> None:
        self.records: list[tuple[Decision, float]] = []

    def record(self, decision: Decision, decision_seconds: float) -> None:
        self.records.append((decision, decision_seconds))

    def resumed(self, model: str, failed: str) -> None:
        self.records.append((Decision(model, "", 0.0, Reason.SPECIALIST_ERROR, failed), 0.0))

    def key_usage(self, *_: object) -> None:
        pass

    def rate_limited(self, *_: object) -> None:
        pass


def _telemetry() -> tuple[RouteTelemetry, InMemorySpanExporter, RecordingMetrics]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    metrics = RecordingMetrics()
    return RouteTelemetry(provider, metrics), exporter, metrics


def test_fallback_is_explained_the_same_everywhere() -> None:
    telemetry, exporter, metrics = _telemetry()
    decision = Decision("generalist", "law", 0.93, Reason.FIRST_TOKEN_DEADLINE, "law")
    span = telemetry.start("chat", "auto", True, "req-1")
    telemetry.routed(span, Features("law", 0.93, {"law": 0.93}, "lexical"), decision, 0.002)
    RouteTelemetry.finish(span, status=200, usage=(12, 8))

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
        span = telemetry.start("chat", "auto", True, "req-1")
        telemetry.routed(span, None, decision, 0.001, cooldown=cooldown)
        RouteTelemetry.finish(span, status=200, usage=None)
    first, second = (dict(s.attributes or {}) for s in exporter.get_finished_spans())
    assert first[semconv.ATTR_REASON] == "unhealthy" and first[semconv.ATTR_COOLDOWN] is True
    assert semconv.ATTR_COOLDOWN not in second


def test_no_fallback_header_without_a_fallback() -> None:
    decision = Decision("code", "code", 0.99, Reason.SPECIALIST)
    assert semconv.HEADER_FALLBACK_FROM not in explanation_headers(decision)


def test_server_errors_mark_the_span() -> None:
    telemetry, exporter, _ = _telemetry()
    span = telemetry.start("completions", "law", False, "")
    RouteTelemetry.finish(span, status=503, usage=None, error="no replica")
    (finished,) = exporter.get_finished_spans()
    assert finished.status.description == "no replica"
    assert finished.name == "text_completion law"


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
