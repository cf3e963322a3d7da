"""A fake Kubernetes API server over HTTP, for ``garden k8s`` through the real client.

It serves discovery of ``ray.io/v1`` and the RayService resource paths (GET,
POST, PATCH, DELETE) from memory, and records every request, so tests see
exactly what the official ``kubernetes`` client sent: method, path, query,
content type, bearer token and JSON body. Switches make it answer like a
cluster without KubeRay (404 on discovery) or an identity without rights (403).
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

TOKEN = "fake-token"
_BASE = "/apis/ray.io/v1"


@dataclass
class Request:
    """One request as the server received it."""

    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: Any


@dataclass
class FakeKube:
    """An in-memory API server for RayServices; ``statuses`` are served in turn on GETs."""

    crd_installed: bool = True
    forbidden: bool = False
    objects: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)
    statuses: list[dict[str, Any]] = field(default_factory=list)
    requests: list[Request] = field(default_factory=list)

    def start(self) -> FakeKube:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # the client keeps connections alive

            def log_message(self, *args: Any) -> None:  # quiet test output
                pass

            def _serve(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length else b""
                url = urlsplit(self.path)
                request = Request(
                    self.command,
                    url.path,
                    parse_qs(url.query),
                    {k.lower(): v for k, v in self.headers.items()},
                    json.loads(raw) if raw else None,
                )
                fake.requests.append(request)
                code, payload = fake.answer(request)
                data = (
                    payload.encode() if isinstance(payload, str) else json.dumps(payload).encode()
                )
                self.send_response(code)
                ctype = "text/plain" if isinstance(payload, str) else "application/json"
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = do_PATCH = do_DELETE = _serve

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def kubeconfig(self, directory: Path, namespace: str = "ml") -> Path:
        """A kubeconfig whose current context is this server, with a bearer token."""
        config = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [{"name": "fake", "cluster": {"server": self.url}}],
            "users": [{"name": "dev", "user": {"token": TOKEN}}],
            "contexts": [
                {
                    "name": "fake",
                    "context": {"cluster": "fake", "user": "dev", "namespace": namespace},
                }
            ],
            "current-context": "fake",
        }
        path = directory / "kubeconfig"
        path.write_text(json.dumps(config))
        return path

    # -- the API -----------------------------------------------------------

    @staticmethod
    def _status(code: int, reason: str, message: str, **details: Any) -> tuple[int, Any]:
        body = {
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": message,
            "reason": reason,
            "details": details,
            "code": code,
        }
        return code, body

    def answer(self, req: Request) -> tuple[int, Any]:
        """The status code and body a real API server would send for ``req``."""
        if not req.path.startswith(_BASE) or not self.crd_installed:
            return 404, "404 page not found"  # an unknown API group: not even a Status
        if req.path == _BASE:
            return 200, {
                "kind": "APIResourceList",
                "apiVersion": "v1",
                "groupVersion": "ray.io/v1",
                "resources": [
                    {
                        "name": "rayservices",
                        "singularName": "rayservice",
                        "namespaced": True,
                        "kind": "RayService",
                        "verbs": ["create", "delete", "get", "list", "patch"],
                    },
                    {
                        "name": "rayservices/status",
                        "singularName": "",
                        "namespaced": True,
                        "kind": "RayService",
                        "verbs": ["get", "patch", "update"],
                    },
                ],
            }
        parts = req.path[len(_BASE) :].strip("/").split("/")  # namespaces/NS/rayservices[/NAME]
        namespace, name = parts[1], (parts[3] if len(parts) > 3 else None)
        if self.forbidden:
            verb = {"GET": "get", "POST": "create", "PATCH": "patch", "DELETE": "delete"}
            return self._status(
                403,
                "Forbidden",
                f'rayservices.ray.io "{name}" is forbidden: User "dev" cannot '
                f'{verb[req.method]} resource "rayservices" in API group "ray.io" in the '
                f'namespace "{namespace}"',
            )
        key = (namespace, name or (req.body or {}).get("metadata", {}).get("name", ""))
        stored = self.objects.get(key)
        if req.method == "POST":
            if stored is not None:
                return self._status(409, "AlreadyExists", "already exists")
            obj = json.loads(json.dumps(req.body))
            obj["metadata"].update(generation=1, uid="uid-1", resourceVersion="1")
            self.objects[key] = obj
            return 201, obj
        if stored is None:
            return self._status(
                404,
                "NotFound",
                f'rayservices.ray.io "{name}" not found',
                name=name,
                group="ray.io",
                kind="rayservices",
            )
        if req.method == "GET":
            if self.statuses:
                stored["status"] = (
                    self.statuses.pop(0) if len(self.statuses) > 1 else self.statuses[0]
                )
            return 200, stored
        if req.method == "PATCH":
            stored["spec"] = req.body["spec"]  # server-side apply of a full manifest
            stored["metadata"]["generation"] += 1
            return 200, stored
        del self.objects[key]  # DELETE
        return 200, {
            "kind": "Status",
            "apiVersion": "v1",
            "status": "Success",
            "details": {"name": name, "group": "ray.io", "kind": "rayservices"},
        }
