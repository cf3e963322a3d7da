"""The model replica's span: a child of the router's, around the engine call.

The router passes its span's W3C context with each call
(:meth:`GardenModel.generate <deployments._server.GardenModel.generate>`);
the replica exports its own span to ``telemetry.traces_endpoint``, which the
garden sets in the replica's environment as OpenTelemetry's standard
``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT``.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Mapping
from typing import Any

from opentelemetry import propagate
from opentelemetry.trace import Span, SpanKind, Status, StatusCode, Tracer

from cluster.tracing import MODEL_SERVICE, TRACES_ENDPOINT_ENV, tracer_provider
from router import semconv

__all__ = ["end_span", "engine_span", "replica_tracer"]


@functools.cache
def replica_tracer() -> Tracer:
    """This process's tracer: exporting where the environment says, else the global one."""
    provider = tracer_provider(os.environ.get(TRACES_ENDPOINT_ENV) or None, MODEL_SERVICE)
    return provider.get_tracer(semconv.MODEL_TRACER_NAME)


def engine_span(endpoint: str, model: str, trace: Mapping[str, str] | None) -> Span:
    """A span for one engine call of ``endpoint``, continuing the trace in ``trace``."""
    operation = semconv.OPERATIONS.get(endpoint, endpoint)
    return replica_tracer().start_span(
        f"{operation} {model}",
        context=propagate.extract(dict(trace or {})),
        kind=SpanKind.INTERNAL,
        attributes={
            semconv.ATTR_OPERATION: operation,
            semconv.ATTR_PROVIDER: semconv.PROVIDER,
            semconv.ATTR_REQUEST_MODEL: model,
        },
    )


def end_span(span: Span, status: int | None, error: BaseException | None = None) -> None:
    """End ``span`` with the reply's HTTP status and, on failure, its ``error.type``."""
    attributes: dict[str, Any] = {}
    if status is not None:
        attributes[semconv.ATTR_HTTP_STATUS] = status
    if error is not None:
        attributes[semconv.ATTR_ERROR_TYPE] = type(error).__qualname__
        span.set_status(Status(StatusCode.ERROR, repr(error)[:200]))
    elif status is not None and status >= 400:
        attributes[semconv.ATTR_ERROR_TYPE] = str(status)
        if status >= 500:
            span.set_status(Status(StatusCode.ERROR, f"HTTP {status}"))
    span.set_attributes(attributes)
    span.end()
