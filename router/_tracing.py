"""The router's OpenTelemetry tracer provider, from its config."""

from __future__ import annotations

from opentelemetry import trace
from opentelemetry.trace import TracerProvider

__all__ = ["tracer_provider"]

_SERVICE = "model-garden-router"


def tracer_provider(endpoint: str | None) -> TracerProvider:
    """An SDK provider exporting to ``endpoint`` over OTLP/HTTP, or the global one."""
    if endpoint is None:
        return trace.get_tracer_provider()
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.resources import SERVICE_NAME, Resource
    from opentelemetry.sdk.trace import TracerProvider as SDKTracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    provider = SDKTracerProvider(resource=Resource.create({SERVICE_NAME: _SERVICE}))
    # A short delay keeps spans near-live; the batch still bounds export calls.
    provider.add_span_processor(
        BatchSpanProcessor(OTLPSpanExporter(endpoint=endpoint), schedule_delay_millis=1000)
    )
    return provider
