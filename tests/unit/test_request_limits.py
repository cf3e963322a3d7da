"""``router.request_limits``: body size (413), nesting and message count (400), never a 500.

The reader itself, then the router's real app in-process (``tests._ingress``),
with every refusal in OpenAI's error shape and no model called.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError
from starlette.testclient import TestClient

from cluster.config import GardenConfig, RequestLimitsSpec, load_config
from cluster.exceptions import InvalidRequestError, RequestTimeoutError, RequestTooLargeError
from router._body import json_depth, read_body, read_json_body
from tests._ingress import FakeHandle, lexical_garden, serve_router

pytestmark = pytest.mark.unit

LIMITS = RequestLimitsSpec(max_body_bytes=4096, max_json_depth=8, max_messages=3)


def _nested(depth: int) -> str:
    return '{"model": "m", "x": ' + "[" * depth + "]" * depth + "}"


async def _chunks(data: bytes, size: int = 1000) -> AsyncIterator[bytes]:
    for i in range(0, len(data), size):
        yield data[i : i + size]


def test_the_body_is_refused_as_it_passes_the_limit() -> None:
    read: list[int] = []

    async def counted() -> AsyncIterator[bytes]:
        async for chunk in _chunks(b"x" * 10_000):
            read.append(len(chunk))
            yield chunk

    with pytest.raises(RequestTooLargeError, match="larger than 4096 bytes"):
        asyncio.run(read_body(counted(), None, 4096))
    assert sum(read) == 5000  # stopped at the chunk that crossed the limit, not at the end
    with pytest.raises(RequestTooLargeError):  # a declared length over the limit: read nothing
        asyncio.run(read_body(_chunks(b""), "5000", 4096))
    assert asyncio.run(read_body(_chunks(b"y" * 4096), "4096", 4096)) == b"y" * 4096


def test_a_slow_body_is_a_408() -> None:
    async def slow() -> AsyncIterator[bytes]:
        for _ in range(100):
            yield b"x"
            await asyncio.sleep(0.05)

    with pytest.raises(RequestTimeoutError, match=r"still arriving after 0\.2 s") as caught:
        asyncio.run(read_body(slow(), None, 4096, timeout_s=0.2))
    assert caught.value.status_code == 408 and caught.value.code == "request_timeout"


def test_depth_is_counted_without_recursion() -> None:
    assert json_depth(1, 10) == 0
    assert json_depth({"a": [1, {"b": []}]}, 10) == 4
    deep: Any = []
    for _ in range(100_000):  # far past Python's recursion limit
        deep = [deep]
    assert json_depth(deep, 64) == 65  # stops counting just past the limit


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (_nested(8), "nests deeper than 8 levels"),
        (_nested(5000), "nests deeper than 8 levels"),  # RecursionError in the parser
        ('{"messages": [{}, {}, {}, {}]}', "messages has 4 entries, more than 3"),
        ("[1]", "must be a JSON object, got list"),
        ("{", "not valid JSON"),
    ],
    ids=["deep", "very-deep", "messages", "not-object", "not-json"],
)
def test_bad_bodies_are_400s(raw: str, message: str) -> None:
    with pytest.raises(InvalidRequestError, match=message) as caught:
        read_json_body(raw.encode(), LIMITS)
    assert caught.value.status_code == 400
    assert read_json_body(_nested(7).encode(), LIMITS)["model"] == "m"  # at the limit: fine


def test_limits_are_validated_with_the_key_path() -> None:
    data = load_config(None).model_dump(mode="json")
    data["router"]["request_limits"] = {"max_body_bytes": 10}
    with pytest.raises(ValidationError, match=r"router\.request_limits\.max_body_bytes"):
        GardenConfig.model_validate(data)


# -- through the router's app -----------------------------------------------------------


@pytest.fixture
def served(
    data_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[TestClient, dict[str, FakeHandle]]]:
    with serve_router(
        lexical_garden(data_dir, request_limits=LIMITS.model_dump()), monkeypatch
    ) as app:
        yield app


def _error(response: Any) -> dict[str, Any]:
    body = response.json()
    assert set(body) == {"error"}
    assert set(body["error"]) == {"message", "type", "param", "code"}
    return dict(body["error"])


@pytest.mark.parametrize(
    "path",
    [
        "/v1/chat/completions",
        "/v1/completions",
        "/v1/responses",
        "/v1/embeddings",
        "/tokenize",
        "/detokenize",
    ],
)
def test_the_router_refuses_without_calling_a_model(
    served: tuple[TestClient, dict[str, FakeHandle]], path: str
) -> None:
    http, handles = served
    big = json.dumps({"model": "auto", "prompt": "x" * 5000})
    response = http.post(path, content=big, headers={"content-type": "application/json"})
    assert response.status_code == 413
    assert _error(response)["code"] == "request_too_large"

    def chunked() -> Iterator[bytes]:  # no Content-Length: refused while streaming
        yield b'{"model": "auto", "prompt": "'
        for _ in range(10):
            yield b"x" * 1000
        yield b'"}'

    response = http.post(path, content=chunked(), headers={"content-type": "application/json"})
    assert response.status_code == 413
    response = http.post(path, content=_nested(1500))  # parser recursion, under 4 KiB
    assert response.status_code == 400
    assert "nests deeper than 8 levels" in _error(response)["message"]
    too_many = {"model": "auto", "messages": [{"role": "user", "content": "hi"}] * 4}
    response = http.post(path, json=too_many)
    assert response.status_code == 400
    assert _error(response)["param"] == "messages"
    assert all(not h.sent for h in handles.values())
