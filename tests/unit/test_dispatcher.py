"""The dispatcher's wait for a reply head, against a fake Serve handle (no cluster)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from cluster.exceptions import FirstTokenTimeoutError, ModelUnavailableError, UpstreamError
from deployments.protocol import ReplyHead
from router._dispatch import Dispatcher
from router._state import ModelStates

pytestmark = pytest.mark.unit


class _Replies:
    """A reply stream whose head arrives when ``release`` is set."""

    def __init__(self, head: Any) -> None:
        self.head = head
        self.release = asyncio.Event()
        self.cancelled = False

    def __aiter__(self) -> _Replies:
        return self

    async def __anext__(self) -> Any:
        await self.release.wait()
        return self.head

    def cancel(self) -> None:
        self.cancelled = True


class _Handle:
    """Just enough of a ``DeploymentHandle``: ``options(...).generate.remote(...)``."""

    def __init__(self, replies: _Replies) -> None:
        self.replies = replies
        self.generate = self

    def options(self, **_: Any) -> _Handle:
        return self

    def remote(self, endpoint: str, body: dict[str, Any], trace: Any = None) -> _Replies:
        return self.replies


def _garden(replies: _Replies) -> tuple[Dispatcher, ModelStates]:
    states = ModelStates({"law": 4, "generalist": 4}, down_grace_s=0)
    states.observe({"law": 1, "generalist": 1})
    handles: dict[str, Any] = {"law": _Handle(replies), "generalist": _Handle(replies)}
    return Dispatcher(handles, states, retry_after_s=1, watch_period_s=0.01), states


HEAD = ReplyHead(status=200, stream=False, body=b"{}")


def test_a_request_waiting_on_a_model_with_no_replica_left_is_abandoned() -> None:
    replies = _Replies(HEAD)
    dispatcher, states = _garden(replies)

    async def scenario() -> None:
        sent = asyncio.create_task(dispatcher.send("law", "chat", {}, abandon_when_down=True))
        await asyncio.sleep(0.05)
        assert not sent.done()  # still waiting while the replica runs
        states.observe({"generalist": 1})  # Serve reports law's replica gone
        with pytest.raises(ModelUnavailableError, match="lost its running replicas"):
            await sent

    asyncio.run(scenario())
    assert replies.cancelled
    assert states.outstanding("law") == 0
    assert not states.snapshot()["law"].healthy


def test_without_abandoning_the_request_waits_for_a_replacement() -> None:
    replies = _Replies(HEAD)
    dispatcher, states = _garden(replies)

    async def scenario() -> None:
        sent = asyncio.create_task(dispatcher.send("law", "chat", {}))
        await asyncio.sleep(0.05)
        states.observe({"generalist": 1})
        await asyncio.sleep(0.05)
        assert not sent.done()
        replies.release.set()  # the replacement answers
        reply = await sent
        assert reply.head is HEAD and reply.model == "law"

    asyncio.run(scenario())
    assert not replies.cancelled


def test_a_model_that_is_down_refuses_requests_and_abandons_waiting_ones() -> None:
    """Down (Serve reports its replicas failed): a 503 at once, for any request."""
    replies = _Replies(HEAD)
    dispatcher, states = _garden(replies)

    async def scenario() -> None:
        sent = asyncio.create_task(dispatcher.send("law", "chat", {}))  # explicit: no abandon
        await asyncio.sleep(0.05)
        states.observe({"generalist": 1})  # gone, but not down: a replacement may come
        await asyncio.sleep(0.05)
        assert not sent.done()
        states.observe({"generalist": 1}, down=frozenset({"law"}))
        with pytest.raises(ModelUnavailableError, match="replicas failed") as info:
            await sent
        assert info.value.status_code == 503 and info.value.retry_after == 1
        with pytest.raises(ModelUnavailableError, match="has no running replica"):
            await dispatcher.send("law", "chat", {})  # refused before it is sent
        assert states.outstanding("law") == 0

    asyncio.run(scenario())
    assert replies.cancelled
    states.observe({"law": 1, "generalist": 1})
    assert not states.down("law")


def test_a_request_naming_a_model_still_starting_is_refused_with_retry_after() -> None:
    """Progressive readiness: a 503 at once, not a wait through the whole cold start."""
    replies = _Replies(HEAD)
    dispatcher, states = _garden(replies)
    states.observe({"generalist": 1}, starting={"law": 1})

    async def scenario() -> None:
        with pytest.raises(ModelUnavailableError, match="is starting") as info:
            await dispatcher.send("law", "chat", {}, refuse_starting=True)
        assert info.value.status_code == 503 and info.value.code == "model_starting"
        assert info.value.retry_after == 1 and states.outstanding("law") == 0
        # A routed request that ends up there anyway (no spill) waits for it.
        replies.release.set()
        assert (await dispatcher.send("law", "chat", {})).head == HEAD
        # Scaled to zero, nothing starting yet: sent, so that Serve starts a replica.
        states.observe({"generalist": 1})
        assert (await dispatcher.send("law", "chat", {}, refuse_starting=True)).head == HEAD

    asyncio.run(scenario())


def test_the_first_token_deadline_still_applies_while_watching() -> None:
    replies = _Replies(HEAD)
    dispatcher, _ = _garden(replies)
    with pytest.raises(FirstTokenTimeoutError):
        asyncio.run(dispatcher.send("law", "chat", {}, deadline_s=0.05, abandon_when_down=True))
    assert replies.cancelled


def test_a_head_that_arrives_is_returned() -> None:
    replies = _Replies(HEAD)
    replies.release.set()
    dispatcher, states = _garden(replies)
    reply = asyncio.run(dispatcher.send("law", "chat", {}, abandon_when_down=True))
    assert reply.head is HEAD
    assert states.outstanding("law") == 1  # until the reply is closed
    reply.close()
    assert states.outstanding("law") == 0


class _Stalled:
    """A handle whose every request waits for its own never-released head."""

    def __init__(self) -> None:
        self.generate = self
        self.sent: list[_Replies] = []

    def options(self, **_: Any) -> _Stalled:
        return self

    def remote(self, endpoint: str, body: dict[str, Any], trace: Any = None) -> _Replies:
        self.sent.append(_Replies(HEAD))
        return self.sent[-1]


def test_a_missed_deadline_moves_the_requests_already_waiting() -> None:
    """The first miss starts the cooldown; one that waits beside it leaves at once."""
    handle = _Stalled()
    states = ModelStates({"law": 4, "generalist": 4}, cooldown_s=60)
    states.observe({"law": 1, "generalist": 1})
    dispatcher = Dispatcher({"law": handle}, states, retry_after_s=1, watch_period_s=0.01)

    async def scenario() -> float:
        loop = asyncio.get_running_loop()
        first = asyncio.create_task(
            dispatcher.send("law", "chat", {}, deadline_s=0.1, abandon_when_down=True)
        )
        await asyncio.sleep(0.05)
        started = loop.time()
        second = asyncio.create_task(
            dispatcher.send("law", "chat", {}, deadline_s=5.0, abandon_when_down=True)
        )
        with pytest.raises(FirstTokenTimeoutError):
            await first
        with pytest.raises(ModelUnavailableError, match="went into cooldown") as caught:
            await second
        assert caught.value.code == "model_cooldown"
        return loop.time() - started

    waited = asyncio.run(scenario())
    assert waited < 1.0  # not its own 5 s deadline
    assert all(r.cancelled for r in handle.sent)
    assert states.outstanding("law") == 0
    assert states.cooling("law") and not states.snapshot()["law"].healthy


def test_a_client_that_leaves_while_waiting_is_not_counted_any_more() -> None:
    handle = _Stalled()
    states = ModelStates({"law": 4, "generalist": 4})
    states.observe({"law": 1, "generalist": 1})
    dispatcher = Dispatcher({"law": handle}, states, retry_after_s=1, watch_period_s=0.01)

    async def scenario() -> None:
        sent = asyncio.create_task(dispatcher.send("law", "chat", {}, abandon_when_down=True))
        await asyncio.sleep(0.05)
        assert states.outstanding("law") == 1
        sent.cancel()  # the client disconnected
        with pytest.raises(asyncio.CancelledError):
            await sent

    asyncio.run(scenario())
    assert states.outstanding("law") == 0
    assert handle.sent[0].cancelled  # and the replica is told to stop


def test_a_probe_that_answers_ends_the_cooldown() -> None:
    replies = _Replies(HEAD)
    replies.release.set()
    clock = [0.0]
    states = ModelStates({"law": 4, "generalist": 4}, cooldown_s=5, clock=lambda: clock[0])
    states.observe({"law": 1, "generalist": 1})
    dispatcher = Dispatcher({"law": _Handle(replies)}, states, retry_after_s=1)
    states.missed("law")
    clock[0] = 5.0
    reply = asyncio.run(dispatcher.send("law", "chat", {}, abandon_when_down=True))
    reply.close()
    assert not states.cooling("law") and states.snapshot()["law"].healthy


class _Failing(_Replies):
    """A reply stream whose first item raises ``error``."""

    def __init__(self, error: BaseException) -> None:
        super().__init__(HEAD)
        self.error = error

    async def __anext__(self) -> Any:
        raise self.error


def _three_failures(replies: _Replies) -> tuple[Dispatcher, ModelStates]:
    states = ModelStates({"law": 4, "generalist": 4}, failures=3)
    states.observe({"law": 1, "generalist": 1})
    handles: dict[str, Any] = {"law": _Handle(replies)}
    return Dispatcher(handles, states, retry_after_s=1, watch_period_s=0.01), states


def test_a_timeout_inside_the_replica_is_a_failure_not_a_missed_deadline() -> None:
    from ray.exceptions import RayTaskError

    inner = RayTaskError("generate", "traceback", TimeoutError("adapter fetch timed out"))
    error = inner.as_instanceof_cause()
    assert isinstance(error, TimeoutError)  # what Ray raises: both at once
    dispatcher, states = _three_failures(_Failing(error))
    with pytest.raises(UpstreamError, match="adapter fetch timed out"):
        asyncio.run(dispatcher.send("law", "chat", {}, deadline_s=5, abandon_when_down=True))
    assert not states.cooling("law")  # one failure of three, no cooldown


def test_a_slow_whole_answer_counts_as_one_failure_a_missing_first_token_cools() -> None:
    handle = _Stalled()  # never answers
    states = ModelStates({"law": 4, "generalist": 4}, failures=3)
    states.observe({"law": 1, "generalist": 1})
    dispatcher = Dispatcher({"law": handle}, states, retry_after_s=1, watch_period_s=0.01)
    with pytest.raises(FirstTokenTimeoutError, match="sent nothing within 50 ms"):
        asyncio.run(dispatcher.send("law", "chat", {}, deadline_s=0.05, abandon_when_down=True))
    assert not states.cooling("law")
    with pytest.raises(FirstTokenTimeoutError):
        asyncio.run(
            dispatcher.send("law", "chat", {}, deadline_s=0.05, stalls=True, abandon_when_down=True)
        )
    assert states.cooling("law")


def test_only_routed_requests_probe_and_an_adapter_cools_alone() -> None:
    clock = [0.0]
    states = ModelStates({"law": 4, "generalist": 4}, cooldown_s=5, clock=lambda: clock[0])
    states.observe({"law": 1, "generalist": 1})
    handle = _Stalled()
    dispatcher = Dispatcher({"law": handle}, states, retry_after_s=1, watch_period_s=0.01)
    states.missed("law:tax")
    assert states.cooling("law:tax") and not states.cooling("law")
    clock[0] = 5.0

    async def scenario() -> None:
        # A named request (no deadline, nowhere to fall back to) does not take the probe.
        named = asyncio.create_task(dispatcher.send("law", "chat", {}, adapter="tax"))
        await asyncio.sleep(0.05)
        assert states.try_probe("law:tax") is not None  # still free for a routed one
        named.cancel()
        with pytest.raises(asyncio.CancelledError):
            await named

    asyncio.run(scenario())
    assert handle.sent[0].cancelled


def test_a_send_that_fails_to_start_leaks_nothing() -> None:
    class _Broken(_Handle):
        def remote(self, endpoint: str, body: dict[str, Any], trace: Any = None) -> _Replies:
            raise RuntimeError("handle gone")

    states = ModelStates({"law": 4, "generalist": 4}, cooldown_s=5, clock=lambda: 10.0)
    states.observe({"law": 1, "generalist": 1})
    states.missed("law")
    dispatcher = Dispatcher({"law": _Broken(_Replies(HEAD))}, states, retry_after_s=1)
    with pytest.raises(RuntimeError):
        asyncio.run(dispatcher.send("law", "chat", {}, deadline_s=1, abandon_when_down=True))
    assert states.outstanding("law") == 0
