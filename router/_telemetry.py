"""How the router explains a routed request: headers, an OpenTelemetry span, metrics.

All three are derived from the same final :class:`~router.policy.Decision`
(after any fallback), so they cannot disagree. The tracer provider and the
metrics sink are injected; the ingress passes the configured SDK provider
and Ray's metrics, tests pass in-memory ones.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Mapping
from typing import Any, Protocol

from opentelemetry import propagate, trace
from opentelemetry.context import Context
from opentelemetry.trace import Span, SpanKind, Status, StatusCode, TracerProvider

from cluster.jsonl import split_records
from router import semconv
from router.policy import Decision, Features, Reason, Session

__all__ = [
    "RayRouteMetrics",
    "RouteMetrics",
    "RouteTelemetry",
    "Traced",
    "explanation_headers",
    "trace_carrier",
    "trace_parent",
    "usage_of",
]

#: Decision-time buckets: the lexical stage is sub-millisecond, the semantic
#: stage tens of milliseconds.
_DECISION_BUCKETS = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0]
#: The GenAI conventions' advised buckets: tokens, request seconds, first-token seconds.
_TOKEN_BUCKETS = [4.0**i for i in range(14)]
_DURATION_BUCKETS = [0.01 * 2**i for i in range(14)]
_TTFT_BUCKETS = [0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0]
_TTFT_BUCKETS += [7.5, 10.0]
#: Characters of prompt or response text a span holds at most (telemetry.record_content).
_CONTENT_CHARS = 16_384

_FIRST_ID = re.compile(r'"id":\s*"([^"]+)"')
_FINISH = re.compile(r'"finish_reason":\s*"([A-Za-z_]+)"')
_RESPONSE_END = re.compile(r'"type":\s*"response\.(completed|incomplete|failed)"')
_INCOMPLETE = re.compile(r'"incomplete_details":\s*\{\s*"reason":\s*"([A-Za-z_]+)"')


def trace_parent(headers: Mapping[str, str]) -> Context:
    """The W3C trace context (``traceparent``, ``tracestate``) a request carries."""
    return propagate.extract(headers)


def trace_carrier(span: Span) -> dict[str, str]:
    """``span``'s context as W3C headers, for the model replica to continue the trace."""
    carrier: dict[str, str] = {}
    propagate.inject(carrier, context=trace.set_span_in_context(span))
    return carrier


def _finish_reasons(text: str) -> list[str]:
    """Finish reasons in a completion, a chunk, or a Responses object or event."""
    reasons = _FINISH.findall(text)
    end = _RESPONSE_END.search(text)
    if end is not None:
        if end.group(1) == "incomplete":
            incomplete = _INCOMPLETE.search(text)
            reasons.append(incomplete.group(1) if incomplete else "incomplete")
        else:
            reasons.append("stop" if end.group(1) == "completed" else "error")
    return reasons


def explanation_headers(decision: Decision) -> dict[str, str]:
    """The ``x-garden-*`` response headers of ``decision``."""
    headers = {
        semconv.HEADER_MODEL: decision.model,
        semconv.HEADER_DOMAIN: decision.domain,
        semconv.HEADER_CONFIDENCE: f"{decision.confidence:.4f}",
        semconv.HEADER_REASON: decision.reason.value,
    }
    if decision.fallback_from is not None:
        headers[semconv.HEADER_FALLBACK_FROM] = decision.fallback_from
    return headers


def usage_of(payload: bytes | str) -> tuple[int, int] | None:
    """(prompt, completion) tokens from a response body or SSE chunk, if it has usage."""
    text = payload.decode() if isinstance(payload, bytes) else payload
    if '"usage"' not in text:  # cheap test first: most stream chunks carry none
        return None
    # SSE events end at "\n" (split_records also drops a "\r"); splitlines()
    # would also split inside a JSON string holding U+2028 and the like.
    for line in split_records(text):
        data = line.removeprefix("data: ").strip()
        try:
            obj = json.loads(data)
        except json.JSONDecodeError:
            continue
        if not isinstance(obj, dict):
            continue
        # A Responses stream carries it in its last event's response.
        response = obj.get("response")
        usage = obj.get("usage") or (response.get("usage") if isinstance(response, dict) else None)
        if isinstance(usage, dict) and "prompt_tokens" in usage:
            return int(usage["prompt_tokens"]), int(usage.get("completion_tokens") or 0)
        if isinstance(usage, dict) and "input_tokens" in usage:  # the Responses API's names
            return int(usage["input_tokens"]), int(usage.get("output_tokens") or 0)
    return None


class RouteMetrics(Protocol):
    """Where routing decisions are counted."""

    def record(self, decision: Decision, decision_seconds: float) -> None:
        """Count one final decision and how long deciding took."""

    def resumed(self, model: str, failed: str) -> None:
        """Count one stream that ``model`` continued after ``failed`` died mid-stream."""

    def key_usage(self, key: str, model: str, usage: tuple[int, int] | None, spend: float) -> None:
        """Count one answered request of API key ``key`` on ``model``: its tokens and spend."""

    def rate_limited(self, key: str, limit: str) -> None:
        """Count one request of ``key`` refused over ``limit`` (requests, tokens, concurrency)."""

    def answered(
        self,
        operation: str,
        models: tuple[str, str | None],
        seconds: float,
        first_token_seconds: float | None,
        usage: tuple[int, int] | None,
        error_type: str | None,
    ) -> None:
        """Record one answered request as the GenAI metrics: its duration, first token, tokens.

        ``models`` is (requested, responding); the responding one is None when
        no model answered.
        """


class RayRouteMetrics:
    """``garden_route_total{domain,model,reason}`` and ``garden_route_decision_seconds``.

    Exported through Ray's metrics agent, which prefixes application metrics
    with ``ray_`` (so Prometheus sees ``ray_garden_route_total``).
    """

    def __init__(self) -> None:
        from ray.util.metrics import Counter, Histogram

        self._routes = Counter(
            semconv.METRIC_ROUTE,
            description="Requests to virtual models, by domain, serving model and reason.",
            tag_keys=(semconv.TAG_DOMAIN, semconv.TAG_MODEL, semconv.TAG_REASON),
        )
        self._seconds = Histogram(
            semconv.METRIC_DECISION_SECONDS,
            description="Seconds spent classifying and deciding one request.",
            boundaries=_DECISION_BUCKETS,
        )
        self._resumed = Counter(
            semconv.METRIC_RESUMED,
            description="Routed streams continued on another model after theirs failed.",
            tag_keys=(semconv.TAG_MODEL, semconv.TAG_FROM),
        )
        self._key_requests = Counter(
            semconv.METRIC_KEY_REQUESTS,
            description="Answered requests per API key and serving model.",
            tag_keys=(semconv.TAG_KEY, semconv.TAG_MODEL),
        )
        self._key_tokens = Counter(
            semconv.METRIC_KEY_TOKENS,
            description="Tokens per API key: input (prompt) and output (completion).",
            tag_keys=(semconv.TAG_KEY, semconv.TAG_TOKEN_TYPE),
        )
        self._key_spend = Counter(
            semconv.METRIC_KEY_SPEND,
            description="Spend per API key at the serving models' cost_per_hour.",
            tag_keys=(semconv.TAG_KEY,),
        )
        self._key_limited = Counter(
            semconv.METRIC_KEY_LIMITED,
            description="Requests refused with 429 over an API key's limit.",
            tag_keys=(semconv.TAG_KEY, semconv.TAG_LIMIT),
        )
        genai = (
            semconv.TAG_GENAI_OPERATION,
            semconv.TAG_GENAI_REQUEST_MODEL,
            semconv.TAG_GENAI_RESPONSE_MODEL,
        )
        self._genai_tokens = Histogram(
            semconv.METRIC_GENAI_TOKEN_USAGE,
            description="Tokens per request, by gen_ai_token_type (input, output).",
            boundaries=_TOKEN_BUCKETS,
            tag_keys=(*genai, semconv.TAG_GENAI_TOKEN_TYPE),
        )
        self._genai_seconds = Histogram(
            semconv.METRIC_GENAI_REQUEST_DURATION,
            description="Seconds from a request's arrival at the router to its last byte.",
            boundaries=_DURATION_BUCKETS,
            tag_keys=(*genai, semconv.TAG_ERROR_TYPE),
        )
        self._genai_ttft = Histogram(
            semconv.METRIC_GENAI_TIME_TO_FIRST_TOKEN,
            description="Seconds from a streamed request's arrival to its first chunk.",
            boundaries=_TTFT_BUCKETS,
            tag_keys=genai,
        )

    def record(self, decision: Decision, decision_seconds: float) -> None:
        self._routes.inc(
            1,
            tags={
                semconv.TAG_DOMAIN: decision.domain,
                semconv.TAG_MODEL: decision.model,
                semconv.TAG_REASON: decision.reason.value,
            },
        )
        self._seconds.observe(decision_seconds)

    def resumed(self, model: str, failed: str) -> None:
        self._resumed.inc(1, tags={semconv.TAG_MODEL: model, semconv.TAG_FROM: failed})

    def key_usage(self, key: str, model: str, usage: tuple[int, int] | None, spend: float) -> None:
        self._key_requests.inc(1, tags={semconv.TAG_KEY: key, semconv.TAG_MODEL: model})
        prompt, completion = usage or (0, 0)
        for kind, n in (("input", prompt), ("output", completion)):
            if n:
                self._key_tokens.inc(n, tags={semconv.TAG_KEY: key, semconv.TAG_TOKEN_TYPE: kind})
        if spend > 0:
            self._key_spend.inc(spend, tags={semconv.TAG_KEY: key})

    def rate_limited(self, key: str, limit: str) -> None:
        self._key_limited.inc(1, tags={semconv.TAG_KEY: key, semconv.TAG_LIMIT: limit})

    def answered(
        self,
        operation: str,
        models: tuple[str, str | None],
        seconds: float,
        first_token_seconds: float | None,
        usage: tuple[int, int] | None,
        error_type: str | None,
    ) -> None:
        tags = {
            semconv.TAG_GENAI_OPERATION: operation,
            semconv.TAG_GENAI_REQUEST_MODEL: models[0],
            semconv.TAG_GENAI_RESPONSE_MODEL: models[1] or "",
        }
        errors = {**tags, semconv.TAG_ERROR_TYPE: error_type or ""}
        self._genai_seconds.observe(seconds, tags=errors)
        if first_token_seconds is not None:
            self._genai_ttft.observe(first_token_seconds, tags=tags)
        for kind, n in zip(("input", "output"), usage or (), strict=False):
            self._genai_tokens.observe(n, tags={**tags, semconv.TAG_GENAI_TOKEN_TYPE: kind})


class Traced:
    """One request's span, with what its GenAI metrics need: timing, model, outcome.

    :meth:`RouteTelemetry.start` makes it; the ingress notes each reply
    piece (:meth:`observe`) and calls :meth:`finish` once, however the
    request ends.
    """

    def __init__(
        self,
        span: Span,
        operation: str,
        requested_model: str,
        metrics: RouteMetrics | None,
        record_content: bool,
    ) -> None:
        self.span = span
        self._operation = operation
        self._requested = requested_model
        self._metrics = metrics
        self._content = record_content
        self._started = time.perf_counter()
        self._first: float | None = None
        self._id: str | None = None
        self._reasons: list[str] = []
        self._responding: str | None = None
        self._done = False

    def responded(self, model: str) -> None:
        """The model answering (``gen_ai.response.model``; a routed id)."""
        self._responding = model
        self.span.set_attribute(semconv.ATTR_RESPONSE_MODEL, model)

    def observe(self, piece: bytes | str, *, first: bool = False) -> None:
        """Note one piece of the reply: its response id, finish reasons, first-token time."""
        text = piece.decode(errors="replace") if isinstance(piece, bytes) else piece
        if first and self._first is None:
            self._first = time.perf_counter() - self._started
        if self._id is None:
            found = _FIRST_ID.search(text)
            self._id = found.group(1) if found else None
        if "finish_reason" in text or '"response.' in text:
            self._reasons.extend(_finish_reasons(text))

    def output(self, body: bytes) -> None:
        """A whole (non-stream) answer: its id and finish reasons, and its text if recorded."""
        self.observe(body)
        if self._content:
            self.span.set_attribute(
                semconv.ATTR_OUTPUT_MESSAGES, body.decode(errors="replace")[:_CONTENT_CHARS]
            )

    def finish(
        self,
        *,
        status: int,
        usage: tuple[int, int] | None,
        error: str | None = None,
        error_type: str | None = None,
    ) -> None:
        """End the span and record the request's GenAI metrics (only the first call counts)."""
        if self._done:
            return
        self._done = True
        span = self.span
        span.set_attribute(semconv.ATTR_HTTP_STATUS, status)
        if usage is not None:
            span.set_attribute(semconv.ATTR_USAGE_INPUT_TOKENS, usage[0])
            span.set_attribute(semconv.ATTR_USAGE_OUTPUT_TOKENS, usage[1])
        if self._id is not None:
            span.set_attribute(semconv.ATTR_RESPONSE_ID, self._id)
        if self._reasons:
            span.set_attribute(semconv.ATTR_FINISH_REASONS, self._reasons)
        if error_type is None and (error is not None or status >= 400):
            error_type = str(status)
        if error_type is not None:
            span.set_attribute(semconv.ATTR_ERROR_TYPE, error_type)
        if error is not None or status >= 500:
            span.set_status(Status(StatusCode.ERROR, error or f"HTTP {status}"))
        span.end()
        if self._metrics is not None:
            self._metrics.answered(
                self._operation,
                (self._requested, self._responding),
                time.perf_counter() - self._started,
                self._first,
                usage,
                error_type,
            )


class RouteTelemetry:
    """Opens one span per request and records each routed request's explanation."""

    def __init__(
        self,
        tracer_provider: TracerProvider | None = None,
        metrics: RouteMetrics | None = None,
        *,
        server: tuple[str, int] | None = None,
        record_content: bool = False,
    ) -> None:
        provider = tracer_provider or trace.get_tracer_provider()
        self._tracer = provider.get_tracer(semconv.TRACER_NAME)
        self._metrics = metrics
        self._server = server
        self._content = record_content

    def start(
        self,
        endpoint: str,
        requested_model: str,
        stream: bool,
        request_id: str,
        *,
        parent: Context | None = None,
        body: Mapping[str, Any] | None = None,
    ) -> Traced:
        """A span for one request, a child of ``parent`` (the client's trace) when given.

        It carries the request's parameters (``gen_ai.request.*``) and, only
        with ``record_content``, its prompt; :meth:`Traced.finish` ends it.
        """
        operation = semconv.OPERATIONS.get(endpoint, endpoint)
        attributes: dict[str, Any] = {
            semconv.ATTR_OPERATION: operation,
            semconv.ATTR_PROVIDER: semconv.PROVIDER,
            semconv.ATTR_REQUEST_MODEL: requested_model,
            semconv.ATTR_STREAM: stream,
            semconv.ATTR_REQUEST_ID: request_id,
        }
        if self._server is not None:
            attributes[semconv.ATTR_SERVER_ADDRESS] = self._server[0]
            attributes[semconv.ATTR_SERVER_PORT] = self._server[1]
        for key, value in (body or {}).items():
            name = semconv.REQUEST_PARAMETERS.get(key)
            if name is None:
                continue
            if isinstance(value, str) and name.endswith(("stop_sequences", "encoding_formats")):
                value = [value]
            if isinstance(value, bool | int | float | str) or (
                isinstance(value, list) and all(isinstance(v, str) for v in value)
            ):
                attributes[name] = value
        if self._content and body is not None:
            given = next((body[k] for k in ("messages", "input", "prompt") if k in body), None)
            if given is not None:
                text = json.dumps(given, ensure_ascii=False)[:_CONTENT_CHARS]
                attributes[semconv.ATTR_INPUT_MESSAGES] = text
        span = self._tracer.start_span(
            f"{operation} {requested_model}",
            context=parent,
            kind=SpanKind.SERVER,
            attributes=attributes,
        )
        return Traced(span, operation, requested_model, self._metrics, self._content)

    def routed(
        self,
        traced: Traced,
        features: Features | None,
        decision: Decision,
        seconds: float,
        session: Session | None = None,
        *,
        cooldown: bool = False,
    ) -> None:
        """Record the final decision of a virtual-model request on ``span`` and the metrics.

        ``session`` is the conversation's decision the turn was routed by, if
        any; ``cooldown`` says that the specialist was unhealthy for a cooldown.
        """
        traced.responded(decision.model)
        attributes: dict[str, Any] = {
            semconv.ATTR_DOMAIN: decision.domain,
            semconv.ATTR_CONFIDENCE: decision.confidence,
            semconv.ATTR_REASON: decision.reason.value,
        }
        if decision.fallback_from is not None:
            attributes[semconv.ATTR_FALLBACK_FROM] = decision.fallback_from
        if features is not None and features.stage:
            attributes[semconv.ATTR_STAGE] = features.stage
        if session is not None and decision.reason is Reason.SESSION:
            attributes[semconv.ATTR_SESSION_REASON] = session.reason.value
        if cooldown:
            attributes[semconv.ATTR_COOLDOWN] = True
        traced.span.set_attributes(attributes)
        if self._metrics is not None:
            self._metrics.record(decision, seconds)

    def resumed(self, traced: Traced, model: str, failed: str) -> None:
        """Record that ``model`` continued the stream after ``failed`` died mid-stream."""
        traced.responded(model)
        traced.span.set_attributes({semconv.ATTR_RESUMED: True, semconv.ATTR_RESUMED_FROM: failed})
        if self._metrics is not None:
            self._metrics.resumed(model, failed)
