"""The OpenAI-compatible API of the embedded garden, through the official client."""

from __future__ import annotations

import asyncio
import socket
import time

import httpx
import openai
import pytest

from tests.conftest import AUTH, TEST_API_KEY, TEST_BODY_TIMEOUT_S, RunningGarden

pytestmark = pytest.mark.e2e

MESSAGES = [{"role": "user", "content": "Name one symptom of influenza."}]


@pytest.fixture(scope="module")
def client(garden: RunningGarden) -> openai.OpenAI:
    return openai.OpenAI(base_url=garden.endpoint, api_key="unused", max_retries=0, timeout=120)


@pytest.fixture(scope="module")
def model_ids(garden: RunningGarden) -> list[str]:
    return [m.name for m in garden.config.models]


def test_models_lists_every_model(
    garden: RunningGarden, client: openai.OpenAI, model_ids: list[str]
) -> None:
    virtual = [v.name for v in garden.config.router.virtual_models]
    listed = client.models.list().data
    adapters = [
        f"{m.name}:{a.name}"
        for m in garden.config.models
        for a in (m.lora.adapters if m.lora else [])
    ]
    assert [m.id for m in listed] == [*virtual, *model_ids, *adapters]
    assert all(m.model_dump()["max_model_len"] == 2048 for m in listed[len(virtual) :])
    assert {m.owned_by for m in listed} == {"model-garden"}
    assert client.models.retrieve("law").id == "law"


@pytest.mark.parametrize("model", ["medicine", "law", "finance", "code", "generalist"])
def test_chat_non_streaming_on_every_model(client: openai.OpenAI, model: str) -> None:
    # ignore_eos: a tiny model may sample EOS first, and the test needs 8 tokens.
    reply = client.chat.completions.create(
        model=model, messages=MESSAGES, max_tokens=8, extra_body={"ignore_eos": True}
    )
    assert reply.model == model
    assert reply.choices[0].message.role == "assistant"
    assert reply.choices[0].message.content
    assert reply.usage is not None
    assert reply.usage.completion_tokens == 8
    assert reply.usage.total_tokens == reply.usage.prompt_tokens + 8


@pytest.mark.parametrize("model", ["medicine", "law", "finance", "code", "generalist"])
def test_chat_streaming_on_every_model(client: openai.OpenAI, model: str) -> None:
    stream = client.chat.completions.create(
        model=model,
        messages=MESSAGES,
        max_tokens=8,
        stream=True,
        stream_options={"include_usage": True},
        extra_body={"ignore_eos": True},
    )
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text
    assert all(c.model == model for c in chunks)
    usage = chunks[-1].usage
    assert usage is not None and usage.completion_tokens == 8


def test_completions_non_streaming_and_streaming(client: openai.OpenAI) -> None:
    eos = {"ignore_eos": True}
    reply = client.completions.create(
        model="code", prompt="def add(a, b):", max_tokens=6, extra_body=eos
    )
    assert reply.choices[0].text and reply.usage is not None
    assert reply.usage.completion_tokens == 6
    parts = list(
        client.completions.create(
            model="code", prompt="SELECT", max_tokens=6, stream=True, extra_body=eos
        )
    )
    assert "".join(p.choices[0].text for p in parts if p.choices)


def test_raw_stream_ends_with_done(garden: RunningGarden) -> None:
    body = {"model": "finance", "messages": MESSAGES, "max_tokens": 4, "stream": True}
    url = f"{garden.endpoint}/chat/completions"
    with httpx.stream("POST", url, json=body, headers=AUTH, timeout=60) as r:
        assert r.status_code == 200
        assert r.headers["content-type"].startswith("text/event-stream")
        events = [line for line in r.iter_lines() if line.startswith("data: ")]
    assert events[-1] == "data: [DONE]"
    assert len(events) >= 2


def test_request_id_is_echoed(garden: RunningGarden) -> None:
    r = httpx.get(f"{garden.endpoint}/models", headers={"x-request-id": "req-garden-42", **AUTH})
    assert r.headers["x-request-id"] == "req-garden-42"


def test_32_requests_in_flight_all_succeed(garden: RunningGarden) -> None:
    client = openai.AsyncOpenAI(base_url=garden.endpoint, api_key="unused", max_retries=0)
    models = [m.name for m in garden.config.chat_models]

    async def one(i: int) -> int:
        reply = await client.chat.completions.create(
            model=models[i % len(models)],
            messages=[{"role": "user", "content": f"Question number {i}?"}],
            max_tokens=16,
            extra_body={"ignore_eos": True},  # a tiny model may sample EOS early
        )
        assert reply.usage is not None
        return reply.usage.completion_tokens

    async def all_at_once() -> list[int]:
        try:
            return await asyncio.gather(*(one(i) for i in range(32)))
        finally:
            await client.close()

    assert asyncio.run(all_at_once()) == [16] * 32


# --- errors -------------------------------------------------------------------


def _error(exc: openai.APIStatusError) -> dict[str, object]:
    body = exc.response.json()
    assert set(body["error"]) == {"message", "type", "param", "code"}
    return dict(body["error"])


def test_unknown_model_is_404(client: openai.OpenAI) -> None:
    with pytest.raises(openai.NotFoundError) as info:
        client.chat.completions.create(model="astrology", messages=MESSAGES, max_tokens=4)
    err = _error(info.value)
    assert "astrology" in str(err["message"]) and err["param"] == "model"
    assert err["code"] == "model_not_found"


def test_malformed_json_is_400(garden: RunningGarden) -> None:
    r = httpx.post(
        f"{garden.endpoint}/chat/completions",
        content=b'{"model": "law", "messages": [',
        headers={"content-type": "application/json", **AUTH},
    )
    assert r.status_code == 400
    assert r.json()["error"]["type"] == "invalid_request_error"


def test_oversized_and_deeply_nested_bodies_are_refused_cleanly(
    garden: RunningGarden, client: openai.OpenAI
) -> None:
    """Through the real ingress: 413 for 30 MB, 400 for 5,000 levels of nesting, never a 500."""
    url = f"{garden.endpoint}/chat/completions"
    limit = garden.config.router.request_limits.max_body_bytes
    huge = b'{"model": "law", "messages": [{"role": "user", "content": "' + b"x" * (30 << 20)
    r = httpx.post(url, content=huge + b'"}]}', headers=AUTH, timeout=120)
    assert limit < 30 << 20
    assert r.status_code == 413, r.text
    assert r.json()["error"]["code"] == "request_too_large"
    deep = b'{"model": "law", "messages": ' + b"[" * 5000 + b"]" * 5000 + b"}"
    r = httpx.post(url, content=deep, headers=AUTH, timeout=60)
    assert r.status_code == 400, r.text
    assert "nests deeper than" in r.json()["error"]["message"]
    # And the garden still answers.
    reply = client.chat.completions.create(model="law", messages=MESSAGES, max_tokens=2)
    assert reply.choices[0].message is not None


def test_a_slow_client_gets_a_408_not_a_held_slot(garden: RunningGarden) -> None:
    """Slowloris: a body sent a byte at a time is refused after body_timeout_s."""
    url = httpx.URL(garden.endpoint)
    started = time.monotonic()
    with socket.create_connection((url.host, url.port), timeout=60) as sock:
        sock.sendall(
            b"POST /v1/chat/completions HTTP/1.1\r\nHost: garden\r\n"
            b"Authorization: Bearer " + TEST_API_KEY.encode() + b"\r\n"
            b"Content-Type: application/json\r\nContent-Length: 1000\r\n\r\n{"
        )
        sock.settimeout(0.5)
        reply = b""
        while time.monotonic() - started < TEST_BODY_TIMEOUT_S + 20:
            try:
                data = sock.recv(65536)
            except TimeoutError:
                sock.sendall(b" ")  # one more byte, never the whole body
                continue
            if not data:
                break
            reply += data
            if b"\r\n\r\n" in reply and b"}" in reply.split(b"\r\n\r\n", 1)[1]:
                break
    waited = time.monotonic() - started
    head, _, body = reply.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 408"), reply[:300]
    assert b'"code":"request_timeout"' in body.replace(b" ", b"")
    assert TEST_BODY_TIMEOUT_S <= waited < TEST_BODY_TIMEOUT_S + 10


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"model": "law"}, "messages"),
        ({"model": "law", "messages": "not a list"}, "messages"),
        ({"model": "law", "messages": MESSAGES, "max_tokens": -3}, "max_tokens"),
        ({"messages": MESSAGES}, "model"),
        ({"model": "law", "messages": MESSAGES, "stream": "yes"}, "stream"),
    ],
)
def test_invalid_body_is_400_naming_the_param(
    garden: RunningGarden, body: dict[str, object], param: str
) -> None:
    r = httpx.post(f"{garden.endpoint}/chat/completions", json=body, headers=AUTH, timeout=60)
    assert r.status_code == 400, r.text
    err = r.json()["error"]
    assert set(err) == {"message", "type", "param", "code"}
    assert param in str(err["param"]) or param in err["message"]


def test_prompt_plus_max_tokens_over_context_is_400_naming_both(client: openai.OpenAI) -> None:
    context = 2048  # the default garden's max_model_len
    prompt = "the patient " * 700  # well over half the window
    with pytest.raises(openai.BadRequestError) as info:
        client.completions.create(model="medicine", prompt=prompt, max_tokens=1500)
    message = str(_error(info.value)["message"])
    assert str(context) in message
    assert "1500" in message


def test_max_tokens_over_context_is_400(client: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as info:
        client.chat.completions.create(model="law", messages=MESSAGES, max_tokens=5000)
    message = str(_error(info.value)["message"])
    assert "5000" in message and "2048" in message


def test_full_queue_answers_429_with_retry_after(garden: RunningGarden) -> None:
    spec = garden.config.model("law")
    capacity = spec.limits.max_ongoing_requests + spec.limits.max_queued_requests
    body = {"model": "law", "messages": MESSAGES, "max_tokens": 256, "ignore_eos": True}

    async def flood() -> list[httpx.Response]:
        limits = httpx.Limits(max_connections=capacity * 2)
        async with httpx.AsyncClient(timeout=300, limits=limits, headers=AUTH) as http:
            return await asyncio.gather(
                *(
                    http.post(f"{garden.endpoint}/chat/completions", json=body)
                    for _ in range(capacity * 2)
                )
            )

    replies = asyncio.run(flood())
    codes = [r.status_code for r in replies]
    rejected = [r for r in replies if r.status_code == 429]
    assert set(codes) <= {200, 429}, codes
    assert rejected, "a full queue must reject, not wait unboundedly"
    assert codes.count(200) >= spec.limits.max_ongoing_requests
    for r in rejected:
        assert int(r.headers["retry-after"]) >= 1
        assert r.json()["error"]["type"] == "rate_limit_error"
