"""How the router explains a routed request: headers, an OpenTelemetry span, metrics.

All three are derived from the same final :class:`~router.policy.Decision`
(after any fallback), so they cannot disagree. The tracer provider and the
metrics sink are injected; the ingress passes the configured SDK provider
and Ray's metrics, tests pass in-memory ones.
"""

from __future__ import annotations

import json
from typing import Any, Protocol

from opentelemetry import trace
from opentelemetry.trace import Span, SpanKind, Status, StatusCode, TracerProvider

from cluster.jsonl import split_records
from router import semconv
from router.policy import Decision, Features, Reason, Session

__all__ = [
    "RayRouteMetrics",
    "RouteMetrics",
    "RouteTelemetry",
    "explanation_headers",
    "usage_of",
]

#: Decision-time buckets: the lexical stage is sub-millisecond, the semantic
#: stage tens of milliseconds.
_DECISION_BUCKETS = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0]


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
        usage = obj.get("usage") if isinstance(obj, dict) else None
        if isinstance(usage, dict) and "prompt_tokens" in usage:
            return int(usage["prompt_tokens"]), int(usage.get("completion_tokens") or 0)
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


class RouteTelemetry:
    """Opens one span per request and records each routed request's explanation."""

    def __init__(
        self, tracer_provider: TracerProvider | None = None, metrics: RouteMetrics | None = None
    ) -> None:
        provider = tracer_provider or trace.get_tracer_provider()
        self._tracer = provider.get_tracer(semconv.TRACER_NAME)
        self._metrics = metrics

    def start(self, endpoint: str, requested_model: str, stream: bool, request_id: str) -> Span:
        """A span for one request; the caller ends it when the response is done."""
        operation = semconv.OPERATIONS.get(endpoint, endpoint)
        return self._tracer.start_span(
            f"{operation} {requested_model}",
            kind=SpanKind.SERVER,
            attributes={
                semconv.ATTR_OPERATION: operation,
                semconv.ATTR_PROVIDER: semconv.PROVIDER,
                semconv.ATTR_REQUEST_MODEL: requested_model,
                semconv.ATTR_STREAM: stream,
                semconv.ATTR_REQUEST_ID: request_id,
            },
        )

    def routed(
        self,
        span: Span,
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
        attributes: dict[str, Any] = {
            semconv.ATTR_RESPONSE_MODEL: decision.model,
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
        span.set_attributes(attributes)
        if self._metrics is not None:
            self._metrics.record(decision, seconds)

    def resumed(self, span: Span, model: str, failed: str) -> None:
        """Record that ``model`` continued the stream after ``failed`` died mid-stream."""
        span.set_attributes(
            {
                semconv.ATTR_RESUMED: True,
                semconv.ATTR_RESUMED_FROM: failed,
                semconv.ATTR_RESPONSE_MODEL: model,
            }
        )
        if self._metrics is not None:
            self._metrics.resumed(model, failed)

    @staticmethod
    def served(span: Span, model: str) -> None:
        """Record which model served a request that named a model directly."""
        span.set_attribute(semconv.ATTR_RESPONSE_MODEL, model)

    @staticmethod
    def finish(
        span: Span, *, status: int, usage: tuple[int, int] | None, error: str | None = None
    ) -> None:
        """End ``span`` with the response's status, token usage and error, if any."""
        span.set_attribute(semconv.ATTR_HTTP_STATUS, status)
        if usage is not None:
            span.set_attribute(semconv.ATTR_USAGE_INPUT_TOKENS, usage[0])
            span.set_attribute(semconv.ATTR_USAGE_OUTPUT_TOKENS, usage[1])
        if error is not None or status >= 500:
            span.set_status(Status(StatusCode.ERROR, error or f"HTTP {status}"))
        span.end()
