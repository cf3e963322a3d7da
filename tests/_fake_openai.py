"""A tiny OpenAI-compatible streaming chat server (standard library) for load-test tests.

It streams ``max_tokens`` one-word chunks ``delay_s`` apart, then a usage
chunk and ``[DONE]``, with ``x-garden-*`` headers naming a model by the
prompt's first word; its usage counts the words of all the messages as
prompt tokens (a multi-turn chat's grow with each turn). A request for
model ``broken`` gets a stream cut before ``[DONE]``, one for ``failing``
an error event, and one for ``missing`` a 404.
"""

from __future__ import annotations

import contextlib
import json
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

__all__ = ["fake_openai"]


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    delay_s = 0.005

    def setup(self) -> None:
        super().setup()
        # Without it, Nagle's algorithm and delayed ACKs hold small chunks ~40 ms.
        self.request.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_POST(self) -> None:
        # A client may leave mid-stream (Locust stopping a user).
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            self._answer()

    def _answer(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        if body.get("model") == "missing":
            payload = b'{"error": {"message": "no such model"}}'
            self.send_response(404)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)
            return
        prompt = body["messages"][-1]["content"]
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Transfer-Encoding", "chunked")
        self.send_header("x-garden-model", "fake-" + prompt.split()[0].lower())
        self.send_header("x-garden-reason", "specialist")
        self.end_headers()
        tokens = int(body.get("max_tokens", 8))
        for i in range(tokens):
            time.sleep(self.delay_s)
            self._event(
                {"model": "fake", "choices": [{"index": 0, "delta": {"content": f"w{i} "}}]}
            )
        if body["model"] == "broken":
            self.wfile.write(b"0\r\n\r\n")
            return
        if body["model"] == "failing":
            self._event({"error": {"message": "engine died", "code": 500}})
        words = sum(len(str(m.get("content") or "").split()) for m in body["messages"])
        usage = {"prompt_tokens": words, "completion_tokens": tokens}
        usage["total_tokens"] = tokens + words
        self._event({"model": "fake", "choices": [], "usage": usage})
        self._chunk(b"data: [DONE]\n\n")
        self.wfile.write(b"0\r\n\r\n")

    def _event(self, obj: dict[str, Any]) -> None:
        self._chunk(f"data: {json.dumps(obj)}\n\n".encode())

    def _chunk(self, data: bytes) -> None:
        self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
        self.wfile.flush()


@contextmanager
def fake_openai() -> Iterator[str]:
    """A running fake server; yields its base URL (without ``/v1``)."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
