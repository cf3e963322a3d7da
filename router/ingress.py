"""The garden's OpenAI-compatible ingress deployment.

The router stays light on purpose: it parses just enough of a request to pick
a model (``model``, ``stream``), and the chosen model replica validates the
rest with vLLM's own schema (``deployments._server.GardenModel.generate``).
No vLLM or torch import happens here, and response bytes pass through as the
replica produced them.
"""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator
from typing import Any, cast

from fastapi import FastAPI, Request
from ray import serve
from ray.exceptions import ActorDiedError, ActorUnavailableError, RayTaskError
from ray.serve.exceptions import (
    BackPressureError,
    DeploymentUnavailableError,
    ReplicaUnavailableError,
)
from ray.serve.handle import DeploymentHandle, DeploymentResponseGenerator
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import JSONResponse, Response, StreamingResponse

from cluster.config import GardenConfig
from cluster.exceptions import (
    InvalidRequestError,
    ModelNotFoundError,
    ModelUnavailableError,
    QueueFullError,
    RequestError,
    UpstreamError,
)
from deployments.protocol import ReplyHead
from router._http import error_response

__all__ = ["Router", "app"]

app = FastAPI(title="Model Garden", openapi_url=None, docs_url=None, redoc_url=None)


@app.exception_handler(RequestError)
async def _request_error(_: Request, exc: RequestError) -> JSONResponse:
    return error_response(exc)


@app.exception_handler(Exception)
async def _unexpected_error(_: Request, exc: Exception) -> JSONResponse:
    # Last resort: still answer in the OpenAI shape (Serve logs the traceback).
    return error_response(UpstreamError(f"internal error: {type(exc).__name__}"))


@app.exception_handler(StarletteHTTPException)
async def _http_error(_: Request, exc: StarletteHTTPException) -> JSONResponse:
    err = RequestError(str(exc.detail), code=str(exc.status_code))
    err.status_code = exc.status_code
    return error_response(err)


async def _json_body(request: Request) -> dict[str, Any]:
    raw = await request.body()
    try:
        body = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise InvalidRequestError(f"request body is not valid JSON: {err}") from err
    if not isinstance(body, dict):
        raise InvalidRequestError(f"request body must be a JSON object, got {type(body).__name__}")
    return body


async def _sse(
    head: ReplyHead, rest: DeploymentResponseGenerator[Any]
) -> AsyncIterator[bytes | str]:
    yield head.body
    try:
        async for chunk in rest:
            yield chunk
    except (RayTaskError, ActorDiedError, ActorUnavailableError, ReplicaUnavailableError) as err:
        # Bytes already reached the client: end the stream with an error event
        # and no [DONE], so the client sees a failed stream, not a short one.
        body = UpstreamError(f"stream interrupted: {type(err).__name__}").to_body()
        yield f"data: {json.dumps(body)}\n\n"


@serve.deployment
@serve.ingress(app)
class Router:
    """Dispatches OpenAI requests to the model deployments by ``model`` id."""

    def __init__(self, models: dict[str, DeploymentHandle[Any]], config: dict[str, Any]) -> None:
        garden = GardenConfig.model_validate(config)
        self._handles = {name: h.options(stream=True) for name, h in models.items()}
        self._retry_after = garden.router.retry_after_s
        created = int(time.time())
        self._cards = [
            {
                "id": m.name,
                "object": "model",
                "created": created,
                "owned_by": "model-garden",
                "role": m.role,
                "domains": list(m.domains),
            }
            for m in garden.models
        ]

    @app.get("/v1/models")
    async def list_models(self) -> JSONResponse:
        """OpenAI ``GET /v1/models``: every served model."""
        return JSONResponse({"object": "list", "data": self._cards})

    @app.get("/v1/models/{model_id}")
    async def get_model(self, model_id: str) -> JSONResponse:
        """OpenAI ``GET /v1/models/{id}``."""
        for card in self._cards:
            if card["id"] == model_id:
                return JSONResponse(card)
        raise ModelNotFoundError(model_id, list(self._handles))

    @app.post("/v1/chat/completions")
    async def chat(self, request: Request) -> Response:
        """OpenAI chat completions, streaming or not."""
        return await self._dispatch("chat", await _json_body(request))

    @app.post("/v1/completions")
    async def completions(self, request: Request) -> Response:
        """OpenAI (legacy) completions, streaming or not."""
        return await self._dispatch("completions", await _json_body(request))

    def _handle_for(self, body: dict[str, Any]) -> tuple[str, DeploymentHandle[Any]]:
        model = body.get("model")
        if not isinstance(model, str) or not model:
            raise InvalidRequestError("'model' is required and must be a string", param="model")
        handle = self._handles.get(model)
        if handle is None:
            raise ModelNotFoundError(model, list(self._handles))
        stream = body.get("stream", False)
        if stream is not None and not isinstance(stream, bool):
            raise InvalidRequestError(f"'stream' must be a boolean, got {stream!r}", param="stream")
        return model, handle

    async def _dispatch(self, endpoint: str, body: dict[str, Any]) -> Response:
        model, handle = self._handle_for(body)
        replies = cast(DeploymentResponseGenerator[Any], handle.generate.remote(endpoint, body))
        head = await self._first(model, replies)
        if not head.stream:
            return Response(head.body, status_code=head.status, media_type="application/json")
        return StreamingResponse(_sse(head, replies), media_type="text/event-stream")

    async def _first(self, model: str, replies: DeploymentResponseGenerator[Any]) -> ReplyHead:
        """Await the reply head, mapping Serve's failures to OpenAI errors."""
        try:
            head = await anext(replies)
        except BackPressureError as err:
            retry = err.retry_after_s if err.retry_after_s is not None else self._retry_after
            raise QueueFullError(
                f"model {model!r} is at capacity and its queue is full; retry later",
                code="queue_full",
                retry_after=retry,
            ) from err
        except (
            DeploymentUnavailableError,
            ReplicaUnavailableError,
            ActorDiedError,
            ActorUnavailableError,
        ) as err:
            raise ModelUnavailableError(
                f"model {model!r} has no healthy replica right now",
                code="model_unavailable",
                retry_after=self._retry_after,
            ) from err
        except RayTaskError as err:
            raise UpstreamError(f"model {model!r} failed: {err.cause!r}") from err
        if not isinstance(head, ReplyHead):
            raise UpstreamError(f"model {model!r} sent an unexpected reply {type(head).__name__}")
        return head
