"""OpenTelemetry tracer providers of the garden's processes, from its config.

The router and the model replicas each export their own spans over OTLP/HTTP
to ``telemetry.traces_endpoint``; W3C trace context (``traceparent``) joins
them into one trace: the client's, when its request carries one.
"""

from __future__ import annotations

from opentelemetry import trace
from opentelemetry.trace import TracerProvider

__all__ = ["MODEL_SERVICE", "ROUTER_SERVICE", "TRACES_ENDPOINT_ENV", "tracer_provider"]

#: ``service.name`` of the router's spans, and of the model replicas'.
ROUTER_SERVICE = "model-garden-router"
MODEL_SERVICE = "model-garden-model"
#: OpenTelemetry's standard variable for the OTLP traces endpoint; the garden
#: sets it in each model replica's environment (``deployments.model``).
TRACES_ENDPOINT_ENV = "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"


def tracer_provider(endpoint: str | None, service: str = ROUTER_SERVICE) -> TracerProvider:
    """An SDK provider exporting to ``endpoint`` over OTLP/HTTP, or the global one."""
    if endpoint is None:
        return trace.get_tracer_provider()
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.resources import SERVICE_NAME, Resource
    from opentelemetry.sdk.trace import TracerProvider as SDKTracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    provider = SDKTracerProvider(resource=Resource.create({SERVICE_NAME: service}))
    # A short delay keeps spans near-live; the batch still bounds export calls.
    provider.add_span_processor(
        BatchSpanProcessor(OTLPSpanExporter(endpoint=endpoint), schedule_delay_millis=1000)
    )
    return provider
