"""Per-key quotas through the router's real app and the official ``openai`` client.

In-process (``tests/_ingress.py``): two Router instances over one
:class:`MemoryCounters` play two router replicas sharing the counter store.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import openai
import pytest
from starlette.testclient import TestClient

from cluster.config import GardenConfig
from cluster.counters import MemoryCounters
from cluster.exceptions import ConfigError
from deployments.protocol import ReplyHead
from router.quota import usage_of_keys
from tests._ingress import (
    FakeHandle,
    FakeMetrics,
    ReplyStream,
    lexical_garden,
    router_class,
    serve_router,
)

pytestmark = pytest.mark.unit

SECRETS = {"GARDEN_TEST_KEY_TEAM": "sk-team", "GARDEN_TEST_KEY_OPEN": "sk-open"}
MESSAGES: Any = [{"role": "user", "content": "What is a tort?"}]


def _garden(data_dir: Path, **auth: Any) -> GardenConfig:
    keys = [
        {
            "name": "team",
            "secret_env": "GARDEN_TEST_KEY_TEAM",
            "requests_per_minute": 3,
            "models": ["auto", "generalist"],
        },
        {"name": "open", "secret_env": "GARDEN_TEST_KEY_OPEN"},
    ]
    return lexical_garden(data_dir, auth={"keys": keys, **auth})


@pytest.fixture
def secrets(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in SECRETS.items():
        monkeypatch.setenv(name, value)


def _client(http: TestClient, key: str) -> openai.OpenAI:
    return openai.OpenAI(
        base_url="http://testserver/v1", api_key=key, http_client=http, max_retries=0
    )


def test_requests_per_minute_are_shared_by_two_routers(
    data_dir: Path, monkeypatch: pytest.MonkeyPatch, secrets: None
) -> None:
    counters = MemoryCounters()
    garden = _garden(data_dir)
    with (
        serve_router(garden, monkeypatch, counters=counters) as (one, _),
        serve_router(garden, monkeypatch, counters=counters) as (two, _),
    ):
        answers = []
        for i in range(6):
            http = (one, two)[i % 2]
            answers.append(
                http.post(
                    "/v1/chat/completions",
                    headers={"authorization": "Bearer sk-team"},
                    json={"model": "generalist", "messages": MESSAGES},
                )
            )
    codes = [a.status_code for a in answers]
    assert codes.count(200) == 3 and codes.count(429) == 3, codes
    refused = next(a for a in answers if a.status_code == 429)
    body = refused.json()["error"]
    assert body["code"] == "rate_limit_exceeded" and body["type"] == "requests"
    assert "team" in body["message"]
    assert int(refused.headers["retry-after"]) >= 1
    assert refused.headers["x-ratelimit-limit-requests"] == "3"
    assert refused.headers["x-ratelimit-remaining-requests"] == "0"
    assert refused.headers["x-ratelimit-reset-requests"]
    served = next(a for a in answers if a.status_code == 200)
    assert served.headers["x-ratelimit-limit-requests"] == "3"


def test_the_openai_client_sees_a_rate_limit_error(
    data_dir: Path, monkeypatch: pytest.MonkeyPatch, secrets: None
) -> None:
    metrics = FakeMetrics()
    with serve_router(_garden(data_dir), monkeypatch, metrics=metrics) as (http, _):
        client = _client(http, "sk-team")
        for _ in range(3):
            client.chat.completions.create(model="auto", messages=MESSAGES)
        with pytest.raises(openai.RateLimitError) as refused:
            client.chat.completions.create(model="auto", messages=MESSAGES)
    assert refused.value.response.headers["x-ratelimit-remaining-requests"] == "0"
    assert metrics.limited == [("team", "requests")]
    assert [u[0] for u in metrics.usage] == ["team"] * 3


def test_a_key_sees_and_uses_only_its_models(
    data_dir: Path, monkeypatch: pytest.MonkeyPatch, secrets: None
) -> None:
    with serve_router(_garden(data_dir), monkeypatch) as (http, handles):
        team, other = _client(http, "sk-team"), _client(http, "sk-open")
        assert [m.id for m in team.models.list()] == ["auto", "generalist"]
        assert "law" in [m.id for m in other.models.list()]
        with pytest.raises(openai.NotFoundError) as refused:
            team.chat.completions.create(model="law", messages=MESSAGES)
        with pytest.raises(openai.NotFoundError):
            team.models.retrieve("law")
        other.chat.completions.create(model="law", messages=MESSAGES)
    assert refused.value.body["code"] == "model_not_found"  # type: ignore[index]
    assert "law" not in str(refused.value.body["message"]).split("Available")[-1]  # type: ignore[index]
    assert len(handles["law"].sent) == 1  # only the allowed key's request got there


def _stream_with_usage(body: dict[str, Any]) -> Any:
    """A streamed reply: one text chunk, then the usage chunk if the body asks for it."""
    chunks = [
        'data: {"id":"c1","object":"chat.completion.chunk","created":0,"model":"m",'
        '"choices":[{"index":0,"delta":{"content":"hi"},"finish_reason":"stop"}]}\n\n'
    ]
    done = "data: [DONE]\n\n"
    if (body.get("stream_options") or {}).get("include_usage"):
        # One piece with two events, as Ray Serve LLM batches a stream's chunks.
        done = (
            'data: {"id":"c1","object":"chat.completion.chunk","created":0,"model":"m",'
            '"choices":[],"usage":{"prompt_tokens":5,"completion_tokens":1,"total_tokens":6}}'
            "\n\n" + done
        )
    chunks.append(done)

    return ReplyStream([ReplyHead(200, b"", stream=True), *chunks])


@pytest.mark.parametrize("client_asks", [False, True])
def test_streams_are_metered_from_usage_the_router_asks_for(
    data_dir: Path, monkeypatch: pytest.MonkeyPatch, secrets: None, client_asks: bool
) -> None:
    counters, metrics = MemoryCounters(), FakeMetrics()
    with serve_router(
        _garden(data_dir),
        monkeypatch,
        replies={"generalist": _stream_with_usage},
        counters=counters,
        metrics=metrics,
    ) as (http, handles):
        body: dict[str, Any] = {"model": "generalist", "messages": MESSAGES, "stream": True}
        if client_asks:
            body["stream_options"] = {"include_usage": True}
        answer = http.post(
            "/v1/chat/completions", headers={"authorization": "Bearer sk-open"}, json=body
        )
    assert answer.text.endswith("data: [DONE]\n\n")
    events = [line for line in answer.text.split("\n\n") if line.startswith("data: {")]
    chunks = [json.loads(e.removeprefix("data: ")) for e in events]
    has_usage = any("usage" in c for c in chunks)
    assert has_usage is client_asks  # dropped when only the router wanted it
    sent = handles["generalist"].sent[0][0]
    assert sent["stream_options"] == {"include_usage": True}
    assert metrics.usage[0][:3] == ("open", "generalist", (5, 1))
    assert metrics.usage[0][3] > 0  # priced at the generalist's cost_per_hour
    usage = asyncio.run(usage_of_keys(counters, "garden"))
    assert usage["open"]["requests"] == 1
    assert usage["open"]["prompt_tokens"] == 5 and usage["open"]["completion_tokens"] == 1


def test_keys_in_a_directory_are_reloaded_without_a_restart(
    data_dir: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    keys = tmp_path / "keys"
    keys.mkdir()
    (keys / "alice").write_text("sk-alice\n")
    garden = lexical_garden(
        data_dir, auth={"keys_dir": str(keys), "keys": [{"name": "alice", "max_concurrent": 4}]}
    )
    with serve_router(garden, monkeypatch) as (http, _):
        assert _client(http, "sk-alice").models.list().data
        with pytest.raises(openai.AuthenticationError):
            _client(http, "sk-bob").models.list()
        (keys / "bob").write_text("sk-bob")
        (keys / "alice").write_text("sk-alice-rotated")
        router = _router_of(http)
        asyncio.run(router.check_health())
        assert _client(http, "sk-bob").models.list().data
        assert _client(http, "sk-alice-rotated").models.list().data
        with pytest.raises(openai.AuthenticationError):
            _client(http, "sk-alice").models.list()
        # Removing a named key's file revokes it; the others stay.
        (keys / "alice").unlink()
        (keys / "alice~").write_text("sk-alice-rotated")  # an editor's backup is no key
        (keys / "default").write_text("sk-sneaky")  # nor is the reserved name
        asyncio.run(router.check_health())
        for gone in ("sk-alice-rotated", "sk-sneaky"):
            with pytest.raises(openai.AuthenticationError):
                _client(http, gone).models.list()
        assert _client(http, "sk-bob").models.list().data
        # With every file gone no key passes: the garden stays closed.
        for file in keys.iterdir():
            file.unlink()
        asyncio.run(router.check_health())
        with pytest.raises(openai.AuthenticationError):
            _client(http, "sk-bob").models.list()


def _router_of(_: TestClient) -> Any:
    from ray import serve

    return serve.get_replica_context().servable_object


def test_a_key_without_its_secret_fails_the_start(
    data_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("GARDEN_TEST_KEY_TEAM", raising=False)
    monkeypatch.setenv("GARDEN_TEST_KEY_OPEN", "sk-open")
    garden = _garden(data_dir)
    handles = {m.name: FakeHandle() for m in garden.models}
    with pytest.raises(ConfigError, match=r"router\.auth\.keys\[0\]\.secret_env"):
        router_class()(handles, garden.model_dump(mode="json"), metrics=FakeMetrics())


def test_a_stream_whose_client_left_before_the_first_chunk_still_frees_its_slot() -> None:
    from router.ingress import _Stream

    pulled, closed = [], []

    async def body() -> Any:
        pulled.append(True)
        yield "data: [DONE]\n\n"

    async def receive() -> dict[str, str]:
        await asyncio.Event().wait()
        return {}

    async def send(message: dict[str, Any]) -> None:
        raise OSError("client gone")  # at http.response.start

    response = _Stream(body(), closed=lambda: closed.append(True), media_type="text/event-stream")
    scope = {"type": "http", "asgi": {"spec_version": "2.4"}}
    from starlette.requests import ClientDisconnect

    with pytest.raises(ClientDisconnect):  # Starlette's word for the OSError
        asyncio.run(response(scope, receive, send))
    assert pulled == [] and closed == [True]
