"""A minimal OTLP/HTTP trace receiver, so tests can read the spans a garden exports."""

from __future__ import annotations

import gzip
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue


def _value(v: AnyValue) -> Any:
    kind = v.WhichOneof("value")
    if kind == "array_value":
        return [_value(item) for item in v.array_value.values]
    return getattr(v, kind) if kind else None


class SpanCollector:
    """Collects exported spans as dicts: ``name``, ``attributes``, ``kind``, ``service``
    (the resource's ``service.name``), and ``trace_id``, ``span_id`` and
    ``parent_span_id`` in hex (``parent_span_id`` empty for a root span)."""

    def __init__(self) -> None:
        self.spans: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        collector = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                raw = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                if self.headers.get("Content-Encoding") == "gzip":
                    raw = gzip.decompress(raw)
                collector._add(raw)
                self.send_response(200)
                self.send_header("Content-Type", "application/x-protobuf")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    @property
    def endpoint(self) -> str:
        """The OTLP/HTTP traces URL to configure."""
        return f"http://127.0.0.1:{self._server.server_address[1]}/v1/traces"

    def _add(self, raw: bytes) -> None:
        request = ExportTraceServiceRequest.FromString(raw)
        with self._lock:
            for resource in request.resource_spans:
                service = next(
                    (
                        _value(a.value)
                        for a in resource.resource.attributes
                        if a.key == "service.name"
                    ),
                    None,
                )
                for scope in resource.scope_spans:
                    for span in scope.spans:
                        attrs = {a.key: _value(a.value) for a in span.attributes}
                        self.spans.append(
                            {
                                "name": span.name,
                                "attributes": attrs,
                                "kind": span.kind,
                                "service": service,
                                "trace_id": span.trace_id.hex(),
                                "span_id": span.span_id.hex(),
                                "parent_span_id": span.parent_span_id.hex(),
                            }
                        )

    def wait_for(self, attribute: str, value: Any, timeout_s: float = 30) -> dict[str, Any]:
        """The first span whose ``attribute`` equals ``value``, waiting for the export."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            with self._lock:
                for span in self.spans:
                    if span["attributes"].get(attribute) == value:
                        return span
            time.sleep(0.2)
        raise AssertionError(f"no span with {attribute}={value!r} within {timeout_s} s")

    def of_trace(self, trace_id: str, count: int, timeout_s: float = 30) -> list[dict[str, Any]]:
        """The spans of trace ``trace_id`` once at least ``count`` of them arrived."""
        deadline = time.monotonic() + timeout_s
        while True:
            with self._lock:
                found = [s for s in self.spans if s["trace_id"] == trace_id]
            if len(found) >= count or time.monotonic() > deadline:
                return found
            time.sleep(0.2)

    def close(self) -> None:
        self._server.shutdown()
