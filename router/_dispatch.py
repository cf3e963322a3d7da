"""Sending one request to one model deployment and awaiting its first reply.

Everything a model can do before its first byte reaches the client is
turned into either a :class:`Reply` (its head is in hand) or a
:class:`~cluster.exceptions.RequestError`, so that the ingress can decide to
answer, or to fall back to the generalist, while nothing has been sent yet.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from typing import Any, NamedTuple, cast

from grpc.aio import AioRpcError
from ray.exceptions import ActorDiedError, ActorUnavailableError, RayTaskError
from ray.serve.exceptions import (
    BackPressureError,
    DeploymentUnavailableError,
    ReplicaUnavailableError,
)
from ray.serve.handle import DeploymentHandle, DeploymentResponseGenerator

from cluster.exceptions import (
    FirstTokenTimeoutError,
    ModelUnavailableError,
    QueueFullError,
    UpstreamError,
)
from cluster.ray_internals import with_process_transport
from deployments.protocol import ReplyHead, RequestBody
from router._state import ModelStates

__all__ = ["COOLDOWN_CODE", "REPLICA_FAILURES", "Dispatcher", "Reply"]

#: The error code of a request that left a model whose cooldown started while it waited.
COOLDOWN_CODE = "model_cooldown"


class _DeadlinePassed(Exception):
    """The router's own deadline passed (never a replica's TimeoutError)."""


class _Target(NamedTuple):
    """The deployment a request goes to, and the id its health is kept under."""

    model: str
    key: str  # the model, or '<model>:<adapter>'


#: Failures of a replica or of the call to it, as Ray and Serve raise them.
#: Over Serve's gRPC transport, codes other than UNAVAILABLE arrive as they are.
REPLICA_FAILURES = (
    DeploymentUnavailableError,
    ReplicaUnavailableError,
    ActorDiedError,
    ActorUnavailableError,
    AioRpcError,
)


@dataclass(slots=True)
class Reply:
    """A model's reply whose head has arrived; ``rest`` streams the remaining chunks.

    Until :meth:`close` runs, the reply counts as outstanding at ``model``.
    """

    model: str
    head: ReplyHead
    rest: DeploymentResponseGenerator[Any]
    _states: ModelStates
    spilled_from: str | None = None
    _open: bool = True

    async def chunks(self) -> AsyncIterator[str]:
        """The remaining SSE chunks of a stream (raises Ray's errors if the model dies)."""
        async for chunk in self.rest:
            yield cast(str, chunk)

    def close(self) -> None:
        """The reply is done: stop counting it (idempotent)."""
        if self._open:
            self._open = False
            self._states.end(self.model, self.spilled_from)


class Dispatcher:
    """Sends requests to model deployments through their Serve handles."""

    def __init__(
        self,
        handles: dict[str, DeploymentHandle[Any]],
        states: ModelStates,
        retry_after_s: int,
        watch_period_s: float = 0.5,
    ) -> None:
        # The handles were bound by the `garden up` driver: they call as its process
        # would, unless set to this replica's own transport (gRPC in Serve's
        # throughput-optimized mode, cluster.ray_internals).
        self._handles = {
            name: with_process_transport(h).options(stream=True) for name, h in handles.items()
        }
        self._states = states
        self._retry_after = retry_after_s
        self._watch_period = watch_period_s

    @property
    def models(self) -> list[str]:
        """The models this dispatcher can reach, in config order."""
        return list(self._handles)

    async def count_tokens(self, model: str, text: str, timeout_s: float) -> int:
        """Tokens of ``text`` in ``model``'s tokenizer: one call to one of its replicas.

        Raises :class:`TimeoutError` after ``timeout_s``, or what the call raised.
        """
        handle = self._handles[model].options(stream=False)
        return int(await asyncio.wait_for(handle.count_tokens.remote(text), timeout_s))

    async def send(
        self,
        model: str,
        endpoint: str,
        body: dict[str, Any],
        *,
        deadline_s: float | None = None,
        stalls: bool = False,
        spilled_from: str | None = None,
        abandon_when_down: bool = False,
        adapter: str | None = None,
        trace: Mapping[str, str] | None = None,
        refuse_starting: bool = False,
    ) -> Reply:
        """Send ``body`` to ``model`` and return once its reply head arrived.

        With ``refuse_starting`` (a request naming a model in its first
        start, as the caller judges it), a model whose replicas are all still
        starting (none runs yet) refuses it at once with
        :class:`ModelUnavailableError`, code ``model_starting`` and
        ``Retry-After``: Serve would hold it for the whole cold start, while
        ``auto`` is served meanwhile by the generalist.

        ``trace`` is the request span's W3C context (``traceparent``), which
        the replica's own span continues.

        With ``adapter``, the request is for the LoRA adapter ``<model>:<adapter>``
        on ``model``'s replicas: it goes through Serve's model multiplexing
        (``multiplexed_model_id``), which loads the adapter on first use and
        prefers replicas that hold it, and the engine sees that id as the model.
        Health (failures, cooldowns, probes) is then the adapter's own.

        ``spilled_from`` names the specialist this request was meant for and
        could not take; it counts as that model's demand while it runs.

        A model that is down (its replicas failed and none runs, as Serve
        reports it) is refused at once with :class:`ModelUnavailableError`,
        and a request waiting for it leaves the same way when it goes down:
        Serve would hold it for a replacement that may never be placed.

        With ``abandon_when_down`` (a routed request, which has somewhere
        else to go), a request still waiting for its head when the model has
        no running replica left is cancelled and raises
        :class:`ModelUnavailableError`; Serve itself would hold it for a
        replacement replica, a whole cold start later. Such a request also
        leaves, with code ``model_cooldown``, when the model's cooldown starts
        while it waits (another request missed its deadline), and it may be
        the probe that ends a cooldown.

        With ``deadline_s``, a head that takes longer cancels the request and
        raises :class:`~cluster.exceptions.FirstTokenTimeoutError`; the miss
        starts the model's cooldown when ``stalls`` (no first token: the
        replica is stuck), and counts as one failure otherwise (a slow
        answer). Failures before the head raise :class:`QueueFullError`,
        :class:`ModelUnavailableError` or :class:`UpstreamError`, and count
        towards a cooldown. A request cancelled while it waits (the client
        left) is cancelled at the replica too, and stops counting.
        """
        key = model if adapter is None else f"{model}:{adapter}"
        if self._states.down(model):
            raise self._down_error(model)
        if refuse_starting and self._states.cold_start(model):
            raise ModelUnavailableError(
                f"model {model!r} is starting: none of its replicas runs yet; retry later, "
                "or send model 'auto', which the generalist serves meanwhile",
                code="model_starting",
                retry_after=self._retry_after,
            )
        self._states.begin(model, spilled_from)
        probe = None
        try:
            if abandon_when_down and deadline_s is not None:
                probe = self._states.try_probe(key)
            handle = self._handles[model]
            if adapter is not None:
                handle = handle.options(multiplexed_model_id=key)
            # The engine serves under its own name: a routed body still says "auto".
            named = body if body.get("model") == key else {**body, "model": key}
            replies = cast(
                DeploymentResponseGenerator[Any],
                handle.generate.remote(endpoint, RequestBody(named), dict(trace or {})),
            )
            head = await self._head(
                _Target(model, key), replies, deadline_s, stalls, abandon_when_down
            )
        except BaseException:  # a RequestError, or the client gone (CancelledError)
            self._states.end(model, spilled_from)
            raise
        finally:
            if probe is not None:
                self._states.release(key, probe)  # no-op once a verdict was recorded
        return Reply(model, head, replies, self._states, spilled_from)

    async def _first(
        self,
        target: _Target,
        replies: DeploymentResponseGenerator[Any],
        deadline_s: float | None,
        abandon_when_down: bool,
    ) -> Any:
        """The reply's first item; :class:`_DeadlinePassed` past ``deadline_s``.

        The wait is checked every watch period: any request raises
        :class:`ModelUnavailableError` once the model is down (its replicas
        failed, as last observed from Serve). With ``abandon_when_down`` it
        also does once the model has no running replica, or is in cooldown.
        """
        loop = asyncio.get_running_loop()
        give_up = math.inf if deadline_s is None else loop.time() + deadline_s
        first = asyncio.ensure_future(anext(replies))
        try:
            while True:
                left = give_up - loop.time()
                if left <= 0:
                    raise _DeadlinePassed
                done, _ = await asyncio.wait((first,), timeout=min(left, self._watch_period))
                if done:
                    return first.result()  # a replica's own error is raised here, as it is
                if self._states.down(target.model):
                    raise self._down_error(target.model)
                if not abandon_when_down:
                    continue
                if self._states.replicas(target.model) == 0:
                    raise ModelUnavailableError(
                        f"model {target.model!r} lost its running replicas before answering",
                        code="model_unavailable",
                        retry_after=self._retry_after,
                    )
                if self._states.open_now(target.key) or self._states.open_now(target.model):
                    raise ModelUnavailableError(
                        f"model {target.key!r} went into cooldown before answering",
                        code=COOLDOWN_CODE,
                        retry_after=self._retry_after,
                    )
        finally:
            first.cancel()  # stop waiting (no-op once done); _head cancels the request itself

    def _down_error(self, model: str) -> ModelUnavailableError:
        return ModelUnavailableError(
            f"model {model!r} has no running replica: Serve reports its replicas failed "
            "(a lost node or a crashed engine) and is replacing them; retry later",
            code="model_unavailable",
            retry_after=self._retry_after,
        )

    async def _head(
        self,
        target: _Target,
        replies: DeploymentResponseGenerator[Any],
        deadline_s: float | None,
        stalls: bool,
        abandon_when_down: bool,
    ) -> ReplyHead:
        model, key = target
        try:
            head = await self._first(target, replies, deadline_s, abandon_when_down)
        except ModelUnavailableError as err:
            replies.cancel()  # type: ignore[no-untyped-call]  # drop it from Serve's queue
            if err.code != COOLDOWN_CODE:  # the cooldown already counts the model out
                self._states.failed(key)
            raise
        except asyncio.CancelledError:
            replies.cancel()  # type: ignore[no-untyped-call]  # the replica aborts the request
            raise
        except _DeadlinePassed as err:
            replies.cancel()  # type: ignore[no-untyped-call]  # the replica aborts the request
            if stalls:
                self._states.missed(key)
            else:
                self._states.failed(key)
            raise FirstTokenTimeoutError(
                f"model {key!r} sent nothing within {(deadline_s or 0) * 1000:.0f} ms"
            ) from err
        except BackPressureError as err:
            retry = err.retry_after_s if err.retry_after_s is not None else self._retry_after
            raise QueueFullError(
                f"model {model!r} is at capacity and its queue is full; retry later",
                code="queue_full",
                retry_after=retry,
            ) from err
        except REPLICA_FAILURES as err:
            self._states.failed(key)
            raise ModelUnavailableError(
                f"model {model!r} has no healthy replica right now",
                code="model_unavailable",
                retry_after=self._retry_after,
            ) from err
        except RayTaskError as err:  # raised in the replica (a TimeoutError there, too)
            self._states.failed(key)
            raise UpstreamError(f"model {key!r} failed: {err.cause!r}") from err
        if not isinstance(head, ReplyHead):
            raise UpstreamError(f"model {key!r} sent an unexpected reply {type(head).__name__}")
        if head.status < 500:
            self._states.answered(key)
        return head
