"""The one deployment class every model runs."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import AsyncGenerator, AsyncIterator, Mapping
from typing import Any

import psutil
from pydantic import BaseModel, ValidationError

from cluster.startup import report_engine_up
from cluster.store import RayKVStore
from deployments._internals import (
    ChatCompletionRequest,
    CompletionRequest,
    DetokenizeRequest,
    EmbeddingChatRequest,
    EmbeddingCompletionRequest,
    HookedServer,
    ResponsesRequest,
    TokenizeChatRequest,
    TokenizeCompletionRequest,
    engine_client,
)
from deployments._pacing import STREAM_BATCHING_KEY, paced
from deployments._tracing import end_span, engine_span
from deployments.protocol import ENDPOINTS, ReplyHead, RequestBody

__all__ = ["GardenModel"]

logger = logging.getLogger(__name__)

#: vLLM's request schema of each endpoint in ``deployments.protocol.ENDPOINTS``:
#: one, or (a body with ``messages``, one without) where vLLM takes either.
_SCHEMAS: dict[str, type[BaseModel] | tuple[type[BaseModel], type[BaseModel]]] = {
    "chat": ChatCompletionRequest,
    "completions": CompletionRequest,
    "responses": ResponsesRequest,
    "embeddings": (EmbeddingChatRequest, EmbeddingCompletionRequest),
    "tokenize": (TokenizeChatRequest, TokenizeCompletionRequest),
    "detokenize": DetokenizeRequest,
}
assert set(_SCHEMAS) == set(ENDPOINTS)

#: The events that open a Responses stream before its first token.
_OPENING_EVENTS = tuple(
    f"event: response.{kind}\n"
    for kind in ("created", "in_progress", "output_item.added", "content_part.added")
)

#: Endpoints Ray Serve LLM's ``LLMServer`` serves itself (the rest run on the engine).
_SERVER_METHODS = frozenset({"chat", "completions", "embeddings", "tokenize", "detokenize"})


def _schema_of(endpoint: str, body: dict[str, Any]) -> type[BaseModel]:
    schema = _SCHEMAS.get(endpoint)
    if schema is None:
        raise ValueError(f"unknown endpoint {endpoint!r}")
    if isinstance(schema, tuple):
        return schema[0] if "messages" in body else schema[1]
    return schema


def _error_body(message: str, err_type: str, param: Any = None, code: str | None = None) -> bytes:
    return json.dumps(
        {"error": {"message": message, "type": err_type, "param": param, "code": code}}
    ).encode()


def _validation_reply(err: ValidationError) -> ReplyHead:
    first = err.errors(include_url=False)[0]
    loc = ".".join(str(p) for p in first["loc"]) or None
    message = f"{loc}: {first['msg']}" if loc else first["msg"]
    return ReplyHead(400, _error_body(message, "invalid_request_error", loc))


def _chunk_text(item: Any) -> str:
    # Ray Serve LLM batches stream chunks into lists of SSE strings.
    if isinstance(item, list):
        return "".join(_chunk_text(i) for i in item)
    if isinstance(item, str):
        return item
    # A pydantic stream object (an ErrorResponse raised mid-stream, say).
    return f"data: {item.model_dump_json()}\n\n"


def _kv_cache_tokens(engine: Any) -> int | None:
    client = engine_client(engine)
    cache: Any = getattr(getattr(client, "vllm_config", None), "cache_config", None)
    blocks = getattr(cache, "num_gpu_blocks", None)
    return int(blocks * cache.block_size) if blocks else None


class GardenModel(HookedServer):
    """Ray Serve LLM's ``LLMServer`` (through the seam's hooks) with a vLLM-free wire format.

    The engine class (``deployments._engine.GardenEngine``) is imported
    lazily: importing it patches vLLM's serving modules and registers a fork
    hook, which belong in replica processes only, not in the driver.
    """

    def engine_class(self) -> Any:
        from deployments._engine import GardenEngine

        return GardenEngine

    def engine_ready(self) -> None:
        # From the replica process's birth (imports included) to a ready engine.
        self._ready_after_s = time.time() - psutil.Process().create_time()
        # For `garden up`'s bars: from here until Serve runs it, this replica is "engine up".
        # A progress report: the GCS failing it must not fail the replica's start.
        from ray import serve
        from ray.exceptions import RayError

        replica = serve.get_replica_context()
        try:
            report_engine_up(
                RayKVStore(),
                replica.app_name,
                replica.deployment,
                replica.replica_id.unique_id,
                at=time.time(),
            )
        except (RayError, ConnectionError, RuntimeError) as err:
            logger.warning("could not report the engine up for garden up's progress: %r", err)

    def batch_stream(self, stream: AsyncGenerator[Any, None]) -> AsyncGenerator[list[Any], None]:
        # models[].stream_batching: 'paced' unless the config says Ray's 'fixed' clock.
        interval_ms = self.batch_interval_ms()
        mode = self.experimental_configs().get(STREAM_BATCHING_KEY, "paced")
        if mode == "paced" and interval_ms:
            return paced(stream, interval_ms / 1000)
        return super().batch_stream(stream)

    def replica_facts(self) -> dict[str, float | int | None]:
        """What ``garden profile`` reads of this replica.

        ``cold_start_s``: seconds from the replica process's start to its
        engine being ready (scheduling before the process starts is not in
        it). ``kv_cache_tokens``: tokens the engine's KV cache holds.
        """
        return {
            "cold_start_s": getattr(self, "_ready_after_s", None),
            "kv_cache_tokens": _kv_cache_tokens(self.engine),
        }

    async def count_tokens(self, text: str) -> int:
        """Tokens of ``text`` in this replica's tokenizer, special tokens left out.

        The router counts once, at a mid-stream switch, the tokens a stream
        had sent (``router._resume``), so the continuation's ``max_tokens``
        leaves out what the client already got.
        """
        client = engine_client(self.engine)
        if client is None:
            raise RuntimeError("the engine has not started")
        return len(client.get_tokenizer().encode(text, add_special_tokens=False))

    def record_autoscaling_stats(self) -> dict[str, float]:
        """Custom autoscaling metrics for Serve's controller (``autoscaling.metrics``).

        Prompt tokens and requests arriving per second, prompt tokens waiting
        for their prefill, running sequences and KV-cache use.
        """
        probe = getattr(self.engine, "probe", None)
        return {} if probe is None else dict(probe.stats())

    async def generate(
        self, endpoint: str, request: RequestBody, trace: Mapping[str, str] | None = None
    ) -> AsyncIterator[Any]:
        """Serve one OpenAI request given as its JSON body (``request.json``).

        Yields a :class:`ReplyHead`, then the remaining SSE chunks of a stream.
        The body is validated here with vLLM's own request schema, so the
        router never needs vLLM's classes. ``trace`` (W3C headers) is the
        router span's context: the engine call's span is its child.
        """
        body = request.json
        span = engine_span(endpoint, str(body.get("model", "")), trace)
        status: int | None = None
        try:
            async for item in _reply(self, endpoint, body):
                if isinstance(item, ReplyHead):
                    status = item.status
                yield item
        except BaseException as err:  # the span says how it ended; the error goes on
            end_span(span, status, err)
            raise
        end_span(span, status)


async def _reply(server: GardenModel, endpoint: str, body: dict[str, Any]) -> AsyncIterator[Any]:
    """:meth:`GardenModel.generate`'s reply, without its span."""
    schema = _schema_of(endpoint, body)
    try:
        request = schema.model_validate(body)
    except ValidationError as err:
        yield _validation_reply(err)
        return
    if endpoint in _SERVER_METHODS:
        stream = await getattr(server, endpoint)(request)
    else:
        stream = await server.run_on_engine(request, endpoint)
    first = await anext(stream, None)
    if first is None:
        yield ReplyHead(500, _error_body("engine returned no output", "server_error"))
        return
    head_item = first[0] if isinstance(first, list) and first else first
    error: Any = getattr(head_item, "error", None)
    # vLLM's ErrorResponse: a numeric code (a Responses object's own `error` has none).
    if isinstance(getattr(error, "code", None), int):
        status = int(error.code)
        # vLLM names its exception class as the type; OpenAI clients expect these.
        err_type = "invalid_request_error" if status < 500 else "server_error"
        yield ReplyHead(status, _error_body(error.message, err_type, error.param))
        return
    if not getattr(request, "stream", False):
        # vLLM writes Responses objects by their wire names (aliases).
        dumped = first.model_dump_json(by_alias=endpoint == "responses")
        yield ReplyHead(200, dumped.encode())
        return
    head = [_chunk_text(first)]
    if endpoint == "responses":
        # vLLM opens a Responses stream with lifecycle events before any token:
        # the head waits for the first event past them, so the router's
        # first-token deadline and TTFT mean the first token, as for chat.
        while head[-1].startswith(_OPENING_EVENTS):
            following = await anext(stream, None)
            if following is None:
                break
            head.append(_chunk_text(following))
    yield ReplyHead(200, "".join(head).encode(), stream=True)
    async for item in stream:
        yield _chunk_text(item)
