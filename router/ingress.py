"""The garden's OpenAI-compatible ingress deployment.

The router stays light on purpose: it parses just enough of a request to pick
a model (``model``, ``stream``, the text of the last user turn), and the
chosen model replica validates the rest with vLLM's own schema
(``deployments._server.GardenModel.generate``). No vLLM import happens here,
and response bytes pass through as the replica produced them.

Requests naming a model go straight to it. Requests naming a virtual model
(``auto``) are classified and dispatched specialized-first
(:func:`router.policy.decide`); until the first byte reaches the client, a
failing or late specialist is replaced by the generalist
(:func:`router.policy.fall_back`). Every such response is explained by
``x-garden-*`` headers, an OpenTelemetry span and Prometheus series, all
made from the same final decision.

With ``router.auth.api_keys_env`` set, every ``/v1`` route first checks the
request's bearer key (``router.auth``) and answers 401 without a known one.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import logging
import os
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from fastapi import FastAPI, Request
from opentelemetry.trace import TracerProvider
from ray import serve
from ray.exceptions import RayTaskError
from ray.serve.exceptions import BackPressureError
from ray.serve.handle import DeploymentHandle
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import JSONResponse, Response, StreamingResponse

from cluster.config import ADAPTER_ID, GardenConfig
from cluster.counters import Counters
from cluster.exceptions import (
    ConfigError,
    EndpointNotSupportedError,
    FirstTokenTimeoutError,
    InvalidRequestError,
    ModelNotFoundError,
    ModelUnavailableError,
    QueueFullError,
    RateLimitError,
    RequestError,
    UpstreamError,
)
from cluster.startup import engine_up_replicas
from cluster.store import RayKVStore, SharedStore
from cluster.tracing import tracer_provider
from deployments.protocol import ReplyHead
from router import _health
from router._body import read_body, read_json_body
from router._dispatch import COOLDOWN_CODE, REPLICA_FAILURES, Dispatcher, Reply
from router._http import error_response
from router._needs import needs_of
from router._openapi import openapi_document
from router._resume import Transcript, continuations, merge
from router._sessions import Sessions, session_key
from router._state import ModelStates
from router._telemetry import (
    RayRouteMetrics,
    RouteMetrics,
    RouteTelemetry,
    Traced,
    explanation_headers,
    trace_carrier,
    trace_parent,
    usage_of,
)
from router.auth import api_key_check, keys_dir_signature
from router.classify import build_classifier, request_text
from router.policy import (
    Decision,
    Features,
    Needs,
    PolicyConfig,
    Reason,
    Session,
    decide,
    fall_back,
    session_after,
)
from router.quota import Admission, Quotas, quotas_for, spend_of
from router.virtual import model_capabilities, virtual_policies

__all__ = ["Router", "app"]

logger = logging.getLogger("ray.serve")

app = FastAPI(title="Model Garden", openapi_url=None, docs_url=None, redoc_url=None)

#: How often a router replica deletes long-expired sessions from the store.
_REAP_EVERY_S = 300.0

#: Spills that are the specialist's unmet demand: its autoscaler must see them
#: (errors are not demand; a model at zero replicas is, so it can scale up).
_DEMAND_SPILLS = frozenset(
    {
        Reason.OVERLOADED,
        Reason.BUDGET_CAPPED,
        Reason.UNHEALTHY,
        Reason.COLD_START,
        Reason.FIRST_TOKEN_DEADLINE,
    }
)

#: Most request texts classified in one call (the semantic stage pads to the longest).
_CLASSIFY_BATCH = 32

_MID_STREAM_FAILURES = (RayTaskError, *REPLICA_FAILURES)

#: The status and ``error.type`` a request's span gets when its client left
#: (nginx's 499: no answer was sent).
_CLIENT_GONE = 499
_CLIENT_GONE_TYPE = "client_disconnected"

#: Endpoints that generate text: served by specialists and the generalist, and routed.
_GENERATES = frozenset({"chat", "completions", "responses"})
#: Endpoints whose streams the router can resume on the generalist (``router._resume``).
_RESUMABLE = frozenset({"chat", "completions"})


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


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("model-garden")
    except PackageNotFoundError:
        return "0"


def _request_id(request: Request) -> str:
    # Serve's proxy sets x-request-id (the client's, or a fresh one) and echoes it.
    return request.headers.get("x-request-id", "")


def _model_and_stream(body: dict[str, Any]) -> tuple[str, bool]:
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise InvalidRequestError("'model' is required and must be a string", param="model")
    stream = body.get("stream", False)
    if stream is not None and not isinstance(stream, bool):
        raise InvalidRequestError(f"'stream' must be a boolean, got {stream!r}", param="stream")
    return model, bool(stream)


def _model_cards(garden: GardenConfig) -> list[dict[str, Any]]:
    """``/v1/models``: the virtual models, each served model, then each listed LoRA adapter.

    ``max_model_len`` is the context window where the config or checkpoint
    gives one (vLLM's cards carry it too); an adapter's card names its
    ``parent``, as vLLM's do.
    """
    created = int(time.time())
    windows = {name: c.max_model_len for name, c in model_capabilities(garden).items()}
    virtual = [
        {
            "id": v.name,
            "object": "model",
            "created": created,
            "owned_by": "model-garden",
            "role": "router",
            "description": v.description,
            "fallback": v.fallback,
        }
        for v in garden.router.virtual_models
    ]
    served = [
        {
            "id": m.name,
            "object": "model",
            "created": created,
            "owned_by": "model-garden",
            "role": m.role,
            "domains": list(m.domains),
            "max_model_len": windows[m.name],
        }
        for m in garden.models
    ]
    adapters = [
        {
            "id": f"{m.name}:{a.name}",
            "object": "model",
            "created": created,
            "owned_by": "model-garden",
            "role": "adapter",
            "parent": m.name,
            "domains": list(a.domains),
            "max_model_len": windows[m.name],
        }
        for m in garden.models
        for a in (m.lora.adapters if m.lora else [])
    ]
    return virtual + served + adapters


@dataclass(slots=True)
class _Resume:
    """How a routed stream goes on if its model dies: what it sent, and where to go."""

    transcript: Transcript
    body: dict[str, Any]
    generalist: str
    send: Callable[[dict[str, Any]], Awaitable[Reply]]
    failed: Callable[[], None]  # the specialist failed the stream: once, at the switch
    telemetry: RouteTelemetry
    count: Callable[[str], Awaitable[int]]  # tokens of a text, in the generalist's tokenizer


class _Streamed(Protocol):
    """What the stream relay reads of a reply: :class:`Reply`, or :class:`_Merged`."""

    model: str

    @property
    def head(self) -> ReplyHead: ...

    def chunks(self) -> AsyncIterator[str]: ...

    def close(self) -> None: ...


async def _pieces(reply: _Streamed) -> AsyncIterator[bytes | str]:
    """A stream reply's head body, then its chunks."""
    if reply.head.body:
        yield reply.head.body
    async for chunk in reply.chunks():
        yield chunk


@dataclass(slots=True)
class _Merged:
    """The continuations of an ``n`` > 1 stream's open choices, relayed as one stream."""

    model: str
    replies: dict[int, Reply]
    stream_id: str | None

    @property
    def head(self) -> ReplyHead:
        return ReplyHead(200, b"", stream=True)

    async def chunks(self) -> AsyncIterator[str]:
        streams = {index: _pieces(reply) for index, reply in self.replies.items()}
        async with contextlib.aclosing(merge(streams, self.stream_id)) as merged:
            async for piece in merged:
                yield piece

    def close(self) -> None:
        """Stop counting each continuation, and cancel any still generating (idempotent)."""
        for reply in self.replies.values():
            reply.rest.cancel()  # type: ignore[no-untyped-call]  # no-op once finished
            reply.close()


#: The most choices (``n``) of a stream that a switch continues, one request each.
_MAX_RESUMED_CHOICES = 16

#: How long an answer waits, at most, for its session's write to the shared store.
_SESSION_WRITE_WAIT_S = 0.25

#: How long the generalist may take to count a stream's text at a switch.
_COUNT_TIMEOUT_S = 5.0


async def _sent_tokens(resume: _Resume, index: int = 0) -> int | None:
    """Tokens choice ``index`` sent, by the generalist's tokenizer; None when it cannot say."""
    text = resume.transcript.text_of(index)
    if not text:
        return 0
    try:
        return await resume.count(text)
    except (TimeoutError, BackPressureError, RayTaskError, *REPLICA_FAILURES) as err:
        logger.warning("sent tokens not counted (%r): the chunks stand in", err)
        return None


async def _hand_over(reply: _Streamed, resume: _Resume, traced: Traced) -> _Streamed | None:
    """The generalist's reply going on from what ``reply`` sent; None when it cannot.

    A stream of ``n`` > 1 choices goes on as one request per choice still
    open, merged back into one stream (:func:`router._resume.merge`).
    """
    transcript = resume.transcript
    open_choices = [i for i in range(transcript.n) if i not in transcript.finished]
    counts = await asyncio.gather(*(_sent_tokens(resume, i) for i in open_choices))
    bodies = continuations(resume.body, transcript, dict(zip(open_choices, counts, strict=True)))
    if bodies is None:
        return None
    failed = reply.model
    reply.close()
    if not bodies:  # every choice had finished: only the stream's end is missing
        return _Merged(resume.generalist, {}, transcript.stream_id)
    resume.failed()
    tasks = {i: asyncio.ensure_future(resume.send(b)) for i, b in bodies.items()}
    try:
        await asyncio.wait(tasks.values())
    except BaseException:  # the client left: nothing handed over may keep running
        for task in tasks.values():
            task.cancel()
        await asyncio.gather(*tasks.values(), return_exceptions=True)
        _Merged(resume.generalist, _replies_of(tasks), None).close()
        raise
    replies = _replies_of(tasks)
    refused = [t.exception() for t in tasks.values() if t.exception() is not None]
    if refused:
        _Merged(resume.generalist, replies, None).close()
        if not all(isinstance(err, RequestError) for err in refused):
            raise refused[0]  # type: ignore[misc]  # not a refusal: a bug
        logger.warning("stream of %s not resumed: %s", failed, refused[0])
        return None
    # One choice goes on as the generalist's own stream; several (or none left
    # open: only the stream's end was missing) as a merged one.
    handed: _Streamed = (
        replies[0]
        if transcript.n == 1 and 0 in replies
        else _Merged(resume.generalist, replies, transcript.stream_id)
    )
    resume.telemetry.resumed(traced, handed.model, failed)
    logger.info("stream of %s resumed on %s", failed, handed.model)
    return handed


def _replies_of(tasks: Mapping[int, asyncio.Future[Reply]]) -> dict[int, Reply]:
    """The replies of the sends that succeeded."""
    return {
        i: t.result()
        for i, t in tasks.items()
        if t.done() and not t.cancelled() and t.exception() is None
    }


def _ends_stream(piece: bytes | str) -> bool:
    """Whether ``piece`` carries the stream's ``data: [DONE]`` end."""
    tail = piece[-16:] if isinstance(piece, str) else piece[-16:].decode(errors="replace")
    return tail.rstrip().endswith("data: [DONE]")


async def _sse(
    reply: _Streamed,
    traced: Traced,
    resume: _Resume | None = None,
    *,
    drop_usage: bool = False,
    ended: Callable[[tuple[int, int] | None, str], None] | None = None,
) -> AsyncIterator[bytes | str]:
    """The stream's bytes as the model produced them; the reply closes with it.

    With ``resume`` (a routed stream), a model that dies mid-stream hands the
    rest of the stream to the generalist once (:mod:`router._resume`);
    otherwise the stream ends with an error event. ``drop_usage`` leaves out
    the usage-only chunk that the router asked for and the client did not;
    ``ended(usage, model)`` runs when the stream is over, however it ends.
    """
    usage: tuple[int, int] | None = None
    error: str | None = None
    gone = False  # the client left mid-stream
    done = False  # [DONE] went out: a client that leaves now has the whole stream
    relabel: Callable[[bytes | str], str] | None = None  # set once handed over
    sent = 0  # pieces: at least a token each, the count when no usage arrives
    try:
        while True:
            try:
                async for piece in _pieces(reply):
                    traced.observe(piece, first=sent == 0)
                    counted = usage_of(piece)
                    if counted is not None:
                        usage = counted
                        if drop_usage:
                            piece = _without_usage_chunk(piece)
                            if not piece:
                                continue
                    if relabel is not None:
                        piece = relabel(piece)
                    elif resume is not None:
                        resume.transcript.feed(piece)
                    sent += 1
                    done = done or _ends_stream(piece)
                    yield piece
                break
            except _MID_STREAM_FAILURES as err:
                error = f"stream interrupted: {type(err).__name__}"
                first_failure = relabel is None
                handed = (
                    await _hand_over(reply, resume, traced) if resume and first_failure else None
                )
                if handed is None or resume is None:
                    # Bytes already reached the client: end the stream with an error
                    # event and no [DONE], so the client sees a failed stream, not a
                    # short one.
                    yield f"data: {json.dumps(UpstreamError(error).to_body())}\n\n"
                    break
                # A merged stream (n > 1) comes out relabelled already.
                relabel = resume.transcript.relabel if isinstance(handed, Reply) else _as_text
                reply, error = handed, None
    except (asyncio.CancelledError, GeneratorExit):
        # An OpenAI client closes the connection once it reads [DONE], which
        # can come before the replica's stream has ended here: not a failure.
        if not done:
            gone, error = True, "client disconnected"
        raise
    finally:
        reply.close()
        traced.finish(
            status=_CLIENT_GONE if gone else reply.head.status,
            usage=usage,
            error=error,
            error_type=_CLIENT_GONE_TYPE
            if gone
            else (None if error is None else error.partition(": ")[2] or error),
        )
        if ended is not None:
            # A stream cut before its usage chunk still spends what it sent.
            ended(usage if usage is not None else (0, max(0, sent - 1)), reply.model)


def _as_text(piece: bytes | str) -> str:
    return piece.decode() if isinstance(piece, bytes) else piece


def _without_usage_chunk(piece: bytes | str) -> str:
    """``piece`` without the usage-only chunk ``stream_options.include_usage`` adds.

    A piece may hold several SSE events (Ray Serve LLM batches a stream's
    chunks); only the event whose chunk has no choices goes.
    """
    text = piece.decode() if isinstance(piece, bytes) else piece
    kept = []
    for event in text.split("\n\n"):
        data = event.strip().removeprefix("data:").strip()
        if data.startswith("{"):
            try:
                chunk = json.loads(data)
            except json.JSONDecodeError:
                chunk = None
            if isinstance(chunk, dict) and chunk.get("choices") == [] and "usage" in chunk:
                continue
        kept.append(event)
    return "\n\n".join(kept) if any(e.strip() for e in kept) else ""


#: What vLLM's schema (pydantic, lax) reads as ``true``.
_TRUE = frozenset({True, "true", "True", "TRUE", "1", "yes", "on", "t", "y"})


def _with_usage(body: dict[str, Any]) -> tuple[dict[str, Any], bool]:
    """``body`` asking for a stream's usage, and whether the client had asked itself.

    A ``stream_options`` that is not an object is left for vLLM to refuse.
    """
    options = body.get("stream_options")
    if options is None:
        options = {}
    if not isinstance(options, dict):
        return body, True
    asked = options.get("include_usage")
    if isinstance(asked, bool | int | str) and asked in _TRUE:
        return body, True
    return {**body, "stream_options": {**options, "include_usage": True}}, False


class _Stream(StreamingResponse):
    """A streamed response that runs ``closed`` once it is done with, however that goes.

    The relay's own ``finally`` ends a stream that started; a client gone
    before the first chunk was pulled never starts it, and ``closed`` then
    still closes the reply and frees the request's slot.
    """

    def __init__(
        self, content: AsyncIterator[bytes | str], *, closed: Callable[[], object], **kw: Any
    ):
        super().__init__(content, **kw)
        self._closed = closed

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            self._closed()


@serve.deployment
@serve.ingress(app)
class Router:
    """Dispatches OpenAI requests to model deployments, routing virtual models.

    ``tracer_provider``, ``metrics`` and the sessions' ``store`` are
    injectable; by default they come from ``telemetry.traces_endpoint``,
    Ray's metrics and Ray's KV store.
    """

    def __init__(
        self,
        models: dict[str, DeploymentHandle[Any]],
        config: dict[str, Any],
        *,
        tracer: TracerProvider | None = None,
        metrics: RouteMetrics | None = None,
        store: SharedStore | None = None,
        counters: Counters | None = None,
    ) -> None:
        garden = GardenConfig.model_validate(config)
        spec = garden.router
        self._app_name = garden.name
        self._refresh_s = spec.state_refresh_s
        # This replica's own key for the reports several router replicas make.
        self._writer = uuid.uuid4().hex
        self._deadline_s = spec.first_token_deadline_ms / 1000
        self._reply_deadline_s = spec.reply_deadline_ms / 1000
        self._states = ModelStates(
            {m.name: m.limits.max_ongoing_requests for m in garden.models},
            targets={m.name: m.autoscaling.target_ongoing_requests for m in garden.models},
            failures=spec.cooldown.failures,
            window_s=spec.cooldown.window_s,
            cooldown_s=spec.cooldown.cooldown_s,
        )
        self._dispatcher = Dispatcher(
            models, self._states, spec.retry_after_s, watch_period_s=spec.state_refresh_s
        )
        self._policies = virtual_policies(garden)
        self._classifier = build_classifier(garden)
        self._metrics = metrics if metrics is not None else RayRouteMetrics()
        self._telemetry = RouteTelemetry(
            tracer or tracer_provider(garden.telemetry.traces_endpoint),
            self._metrics,
            server=(spec.host, spec.port),
            record_content=garden.telemetry.record_content,
        )
        self._watcher: asyncio.Task[None] | None = None
        self._cards = _model_cards(garden)
        # Read here, in the replica: a configured but empty variable fails the start.
        self._auth_spec = spec.auth
        self._keys_seen = keys_dir_signature(spec.auth.keys_dir)  # first: a change after is seen
        self._auth = api_key_check(spec.auth, os.environ)
        self._quotas: Quotas | None = (
            quotas_for(garden, self._writer, os.environ, counters) if spec.auth.enabled else None
        )
        self._spend = spend_of(garden) if spec.auth.enabled else None
        self._beating: asyncio.Task[None] | None = None
        self._lora_models = frozenset(m.name for m in garden.models if m.lora)
        self._embedders = [m.name for m in garden.embedders]
        # Domain-owning adapters, '<model>:<adapter>' -> the model whose replicas serve them.
        self._adapters = {
            owner: owner.partition(":")[0]
            for owner in garden.domain_owners().values()
            if ":" in owner
        }
        self._store = store or RayKVStore()
        self._sessions = (
            Sessions(self._store, garden.name, spec.session_ttl_s) if spec.session_ttl_s else None
        )
        self._reaped_at = time.monotonic()
        self._tasks: set[asyncio.Task[None]] = set()
        self._limits = spec.request_limits
        self._openapi: dict[str, Any] | None = None

    # -- OpenAI routes ----------------------------------------------------

    @app.get("/v1/models")
    async def list_models(self, request: Request) -> JSONResponse:
        """OpenAI ``GET /v1/models``: the virtual models, then every served model."""
        key = self._authorize(request)
        return JSONResponse({"object": "list", "data": self._cards_for(key)})

    @app.get("/v1/models/{model_id}")
    async def get_model(self, model_id: str, request: Request) -> JSONResponse:
        """OpenAI ``GET /v1/models/{id}``."""
        key = self._authorize(request)
        for card in self._cards_for(key):
            if card["id"] == model_id:
                return JSONResponse(card)
        raise ModelNotFoundError(model_id, self._model_ids(key))

    @app.get("/openapi.json", include_in_schema=False)
    async def openapi(self) -> JSONResponse:
        """The OpenAPI document of the OpenAI routes (public, as vLLM's is)."""
        if self._openapi is None:
            self._openapi = openapi_document(app, _version())
        return JSONResponse(self._openapi)

    @app.post("/v1/chat/completions")
    async def chat(self, request: Request) -> Response:
        """OpenAI chat completions, streaming or not."""
        key = self._authorize(request)
        body = await self._json_body(request)
        return await self._serve("chat", request, body, key, sticky=True)

    @app.post("/v1/completions")
    async def completions(self, request: Request) -> Response:
        """OpenAI (legacy) completions, streaming or not."""
        key = self._authorize(request)
        body = await self._json_body(request)
        return await self._serve("completions", request, body, key, sticky=True)

    @app.post("/v1/responses")
    async def responses(self, request: Request) -> Response:
        """OpenAI Responses API (vLLM's), streaming or not; virtual models route it."""
        key = self._authorize(request)
        body = await self._json_body(request)
        return await self._serve("responses", request, body, key, sticky=True)

    @app.post("/v1/embeddings")
    async def embeddings(self, request: Request) -> Response:
        """OpenAI embeddings, from a model with ``role: embedder``."""
        key = self._authorize(request)
        body = await self._json_body(request)
        return await self._serve("embeddings", request, body, key)

    @app.post("/tokenize")
    async def tokenize(self, request: Request) -> Response:
        """vLLM's ``/tokenize``: a ``prompt`` or ``messages`` in a served model's tokenizer."""
        key = self._authorize(request)
        body = await self._json_body(request)
        return await self._serve("tokenize", request, body, key)

    @app.post("/detokenize")
    async def detokenize(self, request: Request) -> Response:
        """vLLM's ``/detokenize``: ``tokens`` back to text in a served model's tokenizer."""
        key = self._authorize(request)
        body = await self._json_body(request)
        return await self._serve("detokenize", request, body, key)

    async def check_health(self) -> None:
        """Serve's periodic health check; also (re)starts the state watcher and reaps sessions."""
        await self._ensure_watcher()
        self._reload_keys()
        if self._sessions is not None and time.monotonic() - self._reaped_at > _REAP_EVERY_S:
            self._reaped_at = time.monotonic()
            self._background(self._sessions.reap())

    # -- dispatch -----------------------------------------------------------

    async def _json_body(self, request: Request) -> dict[str, Any]:
        """The body as a JSON object, within ``router.request_limits`` (413 or 400 if not)."""
        limit = self._limits.max_body_bytes
        raw = await read_body(
            request.stream(),
            request.headers.get("content-length"),
            limit,
            self._limits.body_timeout_s,
        )
        return read_json_body(raw, self._limits)

    def _authorize(self, request: Request) -> str | None:
        """Every /v1 route starts here: the key's name; 401 without a known key.

        None when the garden has no ``router.auth``.
        """
        return self._auth.check(request.headers.get("authorization"))

    def _reload_keys(self) -> None:
        """Re-read ``router.auth.keys_dir`` if its files changed; keep the old keys if it fails."""
        seen = keys_dir_signature(self._auth_spec.keys_dir)
        if seen == self._keys_seen:
            return
        try:
            self._auth = api_key_check(self._auth_spec, os.environ, reloading=True)
        except ConfigError as err:
            logger.warning("API keys not reloaded, the previous ones stay: %s", err)
            return
        self._keys_seen = seen
        logger.info("API keys reloaded from %s", self._auth_spec.keys_dir)

    def _cards_for(self, key: str | None) -> list[dict[str, Any]]:
        """The model cards key ``key`` may use (every one without auth)."""
        if key is None or self._quotas is None:
            return self._cards
        limits = self._quotas.limits_of(key)
        return [c for c in self._cards if limits.allows(str(c["id"]))]

    def _check_allowed(self, key: str | None, model: str) -> None:
        """404, listing what the key may use, when ``model`` is not on its allow-list."""
        quotas = self._quotas
        if key is not None and quotas is not None and not quotas.limits_of(key).allows(model):
            raise ModelNotFoundError(model, self._model_ids(key))

    async def _admit(self, key: str | None) -> Admission | None:
        """Count one request of ``key`` against its limits (429 when over one)."""
        if key is None or self._quotas is None:
            return None
        try:
            return await self._quotas.admit(key)
        except RateLimitError as err:
            self._metrics.rate_limited(key, err.error_type)
            raise

    async def _beat(self) -> None:
        """Tell the other routers this one is alive, so its in-flight requests count.

        Once when no key has a concurrency limit (it only wakes the store).
        """
        assert self._quotas is not None
        while True:
            await self._quotas.heartbeat()
            if not self._quotas.concurrency_limited:
                await asyncio.Event().wait()  # done; stays pending so it is not restarted
            await asyncio.sleep(1.0)

    def _ended(self, admission: Admission | None) -> Callable[[tuple[int, int] | None, str], None]:
        """What runs when a request of ``admission`` ends: count its usage, free its slot.

        Only its first call counts (a stream ends in its relay, or, if the
        relay never started, when the response is done with).
        """
        done = False

        def ended(usage: tuple[int, int] | None, model: str) -> None:
            nonlocal done
            if done or admission is None or self._quotas is None or self._spend is None:
                return
            done = True
            served = self._deployment(model)
            spend = self._spend(served, usage)
            self._metrics.key_usage(admission.key, served, usage, spend)
            self._background(self._quotas.finish(admission, usage, spend))

        return ended

    def _target(self, model: str, key: str | None = None) -> tuple[str, str | None]:
        """The deployment, and LoRA adapter, serving ``model``; 404 when there is none.

        ``<model>:<adapter>`` names an adapter of a model with ``lora``.
        """
        if model in self._policies or model in self._dispatcher.models:
            return model, None
        base, _, adapter = model.partition(":")
        if base in self._lora_models and ADAPTER_ID.match(adapter):
            return base, adapter
        raise ModelNotFoundError(model, self._model_ids(key))

    def _check_endpoint(self, endpoint: str, model: str, target: str) -> None:
        """400 when ``model`` (served by ``target``) does not serve ``endpoint``."""
        embedder = target in self._embedders
        if endpoint in _GENERATES and embedder:
            raise EndpointNotSupportedError(
                f"model {model!r} is an embedding model: it serves /v1/embeddings, "
                "/tokenize and /detokenize"
            )
        if endpoint == "embeddings" and not embedder:
            raise EndpointNotSupportedError(
                f"model {model!r} generates text and serves no embeddings; the garden's "
                f"embedding models: {self._embedders}"
            )
        if endpoint in ("tokenize", "detokenize") and model in self._policies:
            raise EndpointNotSupportedError(
                f"virtual model {model!r} names no one tokenizer: name a served model"
            )

    def _model_ids(self, key: str | None = None) -> list[str]:
        return [str(card["id"]) for card in self._cards_for(key)]

    async def _ran_before(self, model: str) -> bool:
        """Whether ``model`` had an engine up before (a replica reported it), so it is not new.

        A request naming a model in its first start is refused (503
        ``model_starting``); one whose replica is being replaced (an update)
        or that starts again from zero waits for it, as Serve would have it.
        The replicas' engine-up reports (``cluster.startup``) say so for
        routers that never saw the model running themselves.
        """
        reported = await asyncio.to_thread(engine_up_replicas, self._store, self._app_name, model)
        if reported:
            self._states.ran(model)
        return bool(reported)

    async def _ensure_watcher(self) -> None:
        if self._quotas is not None and (self._beating is None or self._beating.done()):
            # Off the request path: the first store call may start the counter actor.
            self._beating = asyncio.create_task(self._beat())
        if self._watcher is None or self._watcher.done():
            await _health.refresh(self._states, self._app_name, self._writer)
            self._watcher = asyncio.create_task(
                _health.watch(self._states, self._app_name, self._writer, self._refresh_s)
            )

    async def _serve(
        self,
        endpoint: str,
        request: Request,
        body: dict[str, Any],
        key: str | None,
        *,
        sticky: bool = False,
    ) -> Response:
        """Serve one request to ``endpoint``: a named model, or routed by a virtual one.

        ``sticky`` endpoints keep a conversation (``x-session-id`` or ``user``)
        on its model. The request's own trace context, if any, is the span's parent.
        """
        request_id = _request_id(request)
        session = session_key(request.headers, body) if sticky else None
        parent = trace_parent(request.headers)
        model, stream = _model_and_stream(body)
        traced = self._telemetry.start(
            endpoint, model, stream, request_id, parent=parent, body=body
        )
        carrier = trace_carrier(traced.span)  # the replica's span continues this trace
        ended = self._ended(None)
        quota_headers: dict[str, str] = {}
        asked_usage = True
        try:
            # From here on every way out ends the span and the request's accounting (once).
            self._check_allowed(key, model)
            target, adapter = self._target(model, key)
            self._check_endpoint(endpoint, model, target)
            await self._ensure_watcher()
            admission = await self._admit(key)
            if admission is not None:
                ended, quota_headers = self._ended(admission), admission.headers
                if stream and endpoint in _RESUMABLE:
                    # Tokens per key need a stream's usage: ask for it, drop it if unasked.
                    # (A Responses stream's last event always carries it.)
                    body, asked_usage = _with_usage(body)
            if model in self._policies:
                policy = self._policies[model]
                reply, headers, decision = await self._route(
                    policy, endpoint, body, traced, session, carrier
                )
                resume = self._resume(endpoint, body, policy, decision, carrier) if stream else None
            else:
                refuse = self._states.first_start(target) and not await self._ran_before(target)
                send = self._dispatcher.send(
                    target, endpoint, body, adapter=adapter, trace=carrier, refuse_starting=refuse
                )
                reply, headers, resume = await send, {}, None
                traced.responded(model)
        except BaseException as err:
            ended(None, model)
            if isinstance(err, RequestError):
                traced.finish(
                    status=err.status_code,
                    usage=None,
                    error=err.message,
                    error_type=err.code or type(err).__name__,
                )
                err.headers = {**quota_headers, **err.headers}
            else:  # the client left (cancelled), or a bug that answers 500
                gone = isinstance(err, asyncio.CancelledError)
                traced.finish(
                    status=_CLIENT_GONE if gone else 500,
                    usage=None,
                    error=type(err).__name__,
                    error_type=_CLIENT_GONE_TYPE if gone else type(err).__name__,
                )
            raise
        headers = {**headers, **quota_headers}
        if not reply.head.stream:
            reply.close()
            status = reply.head.status
            usage = usage_of(reply.head.body)
            traced.output(reply.head.body)
            traced.finish(status=status, usage=usage)
            ended(usage, reply.model)
            return Response(
                reply.head.body, status_code=status, media_type="application/json", headers=headers
            )

        def closed() -> None:
            reply.close()
            ended(None, reply.model)
            # The client left before the relay began (a no-op when the relay ended it).
            traced.finish(
                status=_CLIENT_GONE,
                usage=None,
                error="client disconnected",
                error_type=_CLIENT_GONE_TYPE,
            )

        return _Stream(
            _sse(reply, traced, resume, drop_usage=not asked_usage, ended=ended),
            closed=closed,
            media_type="text/event-stream",
            headers=headers,
        )

    def _resume(
        self,
        endpoint: str,
        body: dict[str, Any],
        policy: PolicyConfig,
        decision: Decision,
        carrier: dict[str, str],
    ) -> _Resume | None:
        """How a routed stream served by a specialist goes on if it dies (None: it cannot)."""
        generalist = policy.generalist
        if endpoint not in _RESUMABLE or not policy.spill or decision.model == generalist:
            return None
        if not policy.can_serve(generalist, needs_of(body)):
            return None

        async def send(continued: dict[str, Any]) -> Reply:
            return await self._send_to(generalist, endpoint, continued, trace=carrier)

        def failed() -> None:
            self._states.failed(decision.model)

        async def count(text: str) -> int:
            served = self._deployment(generalist)
            return await self._dispatcher.count_tokens(served, text, _COUNT_TIMEOUT_S)

        n = body.get("n", 1)
        choices = n if isinstance(n, int) and 1 <= n <= _MAX_RESUMED_CHOICES else 0
        if not choices:
            return None  # vLLM refuses a bad n; a huge one is not worth resuming
        transcript = Transcript(endpoint, choices)
        return _Resume(transcript, body, generalist, send, failed, self._telemetry, count)

    async def _route(
        self,
        policy: PolicyConfig,
        endpoint: str,
        body: dict[str, Any],
        traced: Traced,
        key: str | None,
        carrier: dict[str, str],
    ) -> tuple[Reply, dict[str, str], Decision]:
        started = time.perf_counter()
        needs = needs_of(body)
        session: Session | None = None
        readable = False
        if self._sessions is not None and key is not None:
            session, readable = await self._sessions.get(key)
        features = await self._classify(request_text(body))
        states = self._states.snapshot(self._adapters)
        decision = decide(features, states, policy, needs, session)
        seconds = time.perf_counter() - started
        reply, decision = await self._send_routed(decision, policy, endpoint, body, needs, carrier)
        lost = decision.fallback_from
        cooldown = (
            lost is not None
            and decision.reason is Reason.UNHEALTHY
            and (states[lost].cooling or self._states.cooling(lost))
        )
        self._telemetry.routed(traced, features, decision, seconds, session, cooldown=cooldown)
        if self._sessions is not None and key is not None and readable:
            after = session_after(decision, policy, session)
            # Kept only when the model answered: a failed turn proves nothing.
            if after is not None and reply.head.status < 400:
                # Held here now, and written to the store before the answer goes,
                # so that the next turn finds it on any router; a slow store
                # delays the answer at most _SESSION_WRITE_WAIT_S (the write goes on).
                self._sessions.remember(key, after)
                saving = self._background(self._sessions.save(key, after))
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(asyncio.shield(saving), _SESSION_WRITE_WAIT_S)
        return reply, explanation_headers(decision), decision

    def _background(self, work: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
        task = asyncio.create_task(work)
        self._tasks.add(task)  # held until done: the loop keeps only weak references
        task.add_done_callback(self._tasks.discard)
        return task

    @serve.batch(max_batch_size=_CLASSIFY_BATCH, batch_wait_timeout_s=0.0)
    async def _classify(self, texts: list[str]) -> list[Features]:
        """The features of each text, for requests that arrived together.

        One ``classify_many`` call per batch, in a thread off the event loop
        (the semantic stage takes milliseconds of CPU). Batches run one at a
        time and never wait to fill: the requests that arrive while one runs
        form the next, so a burst costs one vectorised call, not one each.
        """
        return await asyncio.to_thread(self._classifier.classify_many, texts)

    async def _send_routed(
        self,
        decision: Decision,
        policy: PolicyConfig,
        endpoint: str,
        body: dict[str, Any],
        needs: Needs,
        carrier: dict[str, str],
    ) -> tuple[Reply, Decision]:
        """Send to the decided model; before any byte, fall back to a capable generalist."""
        send = functools.partial(self._send_to, trace=carrier)
        stays = not policy.spill or not policy.can_serve(policy.generalist, needs)
        if stays or decision.model == policy.generalist:
            lost = decision.fallback_from if decision.reason in _DEMAND_SPILLS else None
            return await send(decision.model, endpoint, body, spilled_from=lost), decision
        # No first token means a stuck replica (a cooldown at once); a slow whole
        # answer only counts as one failure.
        stream = bool(body.get("stream"))
        deadline = self._deadline_s if stream else self._reply_deadline_s
        try:
            reply = await send(
                decision.model,
                endpoint,
                body,
                deadline_s=deadline,
                stalls=stream,
                abandon_when_down=True,
            )
        except QueueFullError:
            reason = Reason.OVERLOADED
        except FirstTokenTimeoutError:
            reason = Reason.FIRST_TOKEN_DEADLINE
        except ModelUnavailableError as err:
            # Left a specialist whose cooldown began while it waited: as if it had been cooling.
            reason = Reason.UNHEALTHY if err.code == COOLDOWN_CODE else Reason.SPECIALIST_ERROR
        except UpstreamError:
            reason = Reason.SPECIALIST_ERROR
        else:
            if reply.head.status < 500:
                return reply, decision
            reply.close()
            # An adapter's own failure (say, its fetch) leaves its base model in rotation.
            self._states.failed(decision.model)
            reason = Reason.SPECIALIST_ERROR
        fallback = fall_back(decision, reason, policy)
        logger.info("%s fell back to %s: %s", decision.model, fallback.model, reason.value)
        lost = decision.model if reason in _DEMAND_SPILLS else None
        return await send(fallback.model, endpoint, body, spilled_from=lost), fallback

    def _deployment(self, model: str) -> str:
        """The deployment that serves routed model id ``model`` (an adapter's base model)."""
        return self._adapters.get(model, model)

    async def _send_to(
        self,
        model: str,
        endpoint: str,
        body: dict[str, Any],
        *,
        spilled_from: str | None = None,
        **options: Any,
    ) -> Reply:
        """:meth:`Dispatcher.send` to a routed id: a model, or an adapter on its base model.

        ``spilled_from`` (a routed id too) counts as demand of the deployment serving it.
        """
        lost = None if spilled_from is None else self._deployment(spilled_from)
        base = self._adapters.get(model)
        adapter = None if base is None else model.partition(":")[2]
        return await self._dispatcher.send(
            base or model, endpoint, body, spilled_from=lost, adapter=adapter, **options
        )
