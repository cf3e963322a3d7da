"""Per-key quotas on the session garden: two router replicas, the official ``openai`` client.

The session garden's ``router.auth`` (``tests/conftest.py``) has the
unlimited key every other test sends, and three named keys: ``metered``
(6 requests a minute, ``auto`` and ``generalist`` only; its secret is a file
of ``keys_dir``), ``tokens`` (60 tokens a minute) and ``few`` (2 requests
in flight). Counters live in the garden's Ray actor, shared by both routers.
"""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
from click.testing import CliRunner

from cluster.cli import _keys  # noqa: F401  (registers the command)
from cluster.cli._main import cli
from tests.conftest import TEST_API_KEY, TEST_KEYS, RunningGarden

pytestmark = pytest.mark.e2e

MESSAGES: Any = [{"role": "user", "content": "Tell me about bicycles."}]


def _client(garden: RunningGarden, key: str) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(base_url=garden.endpoint, api_key=key, max_retries=0, timeout=120)


def _secret(name: str) -> str:
    return TEST_KEYS[name][0]


async def _outcome(call: Any) -> Any:
    try:
        return await call
    except openai.APIStatusError as err:
        return err


def test_a_keys_requests_per_minute_hold_across_both_routers(garden: RunningGarden) -> None:
    """12 requests at once from a key allowed 6 a minute: 6 served, 6 refused, any router."""
    assert garden.config.router.num_replicas == 2

    async def burst() -> list[Any]:
        # One client (connection pool) per request, so HAProxy spreads them on both routers.
        clients = [_client(garden, _secret("metered")) for _ in range(12)]
        try:
            return await asyncio.gather(
                *(
                    _outcome(
                        c.chat.completions.with_raw_response.create(
                            model="generalist", messages=MESSAGES, max_tokens=4
                        )
                    )
                    for c in clients
                )
            )
        finally:
            for c in clients:
                await c.close()

    outcomes = asyncio.run(burst())
    refused = [o for o in outcomes if isinstance(o, openai.RateLimitError)]
    served = [o for o in outcomes if not isinstance(o, openai.APIStatusError)]
    assert len(served) + len(refused) == 12, outcomes
    assert len(served) == 6, [type(o).__name__ for o in outcomes]
    error = refused[0]
    assert error.body["code"] == "rate_limit_exceeded"  # type: ignore[index]
    assert error.body["type"] == "requests"  # type: ignore[index]
    assert int(error.response.headers["retry-after"]) >= 1
    assert error.response.headers["x-ratelimit-limit-requests"] == "6"
    assert error.response.headers["x-ratelimit-remaining-requests"] == "0"
    assert all(s.headers["x-ratelimit-limit-requests"] == "6" for s in served)


def test_a_key_sees_and_reaches_only_its_models(garden: RunningGarden) -> None:
    async def scenario() -> tuple[list[str], Any]:
        client = _client(garden, _secret("metered"))
        try:
            listed = [m.id async for m in client.models.list()]
            refused = await _outcome(
                client.chat.completions.create(model="law", messages=MESSAGES, max_tokens=2)
            )
            return listed, refused
        finally:
            await client.close()

    listed, refused = asyncio.run(scenario())
    assert listed == ["auto", "generalist"]
    assert isinstance(refused, openai.NotFoundError), refused
    assert refused.body["code"] == "model_not_found"  # type: ignore[index]


def test_a_streams_tokens_count_though_the_client_asked_no_usage(garden: RunningGarden) -> None:
    """``tokens`` may spend 60 tokens a minute: one 80-token stream spends them all."""

    async def scenario() -> tuple[list[Any], Any]:
        client = _client(garden, _secret("tokens"))
        try:
            stream = await client.chat.completions.create(
                model="generalist",
                messages=MESSAGES,
                max_tokens=80,
                stream=True,
                extra_body={"ignore_eos": True},
            )
            chunks = [c async for c in stream]
            await asyncio.sleep(0.5)  # the router counts the usage as the stream ends
            after = await _outcome(
                client.chat.completions.create(model="generalist", messages=MESSAGES, max_tokens=2)
            )
            return chunks, after
        finally:
            await client.close()

    chunks, after = asyncio.run(scenario())
    assert chunks and all(c.usage is None for c in chunks)  # the usage chunk was dropped
    # Ray Serve LLM may batch several tokens into a chunk: the text ran to max_tokens.
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "length"
    assert isinstance(after, openai.RateLimitError), after
    assert after.body["type"] == "tokens"  # type: ignore[index]
    assert after.response.headers["x-ratelimit-remaining-tokens"] == "0"


def test_concurrency_is_one_limit_across_both_routers(garden: RunningGarden) -> None:
    """``few`` may have 2 requests in flight: of 6 long streams started at once, at most 2 run."""

    async def one() -> Any:
        client = _client(garden, _secret("few"))
        try:
            stream = await client.chat.completions.create(
                model="generalist",
                messages=MESSAGES,
                max_tokens=200,
                stream=True,
                extra_body={"ignore_eos": True},
            )
            return [c async for c in stream]
        except openai.APIStatusError as err:
            return err
        finally:
            await client.close()

    async def scenario() -> tuple[list[Any], Any]:
        outcomes = await asyncio.gather(*(one() for _ in range(6)))
        await asyncio.sleep(0.5)
        again = await one()  # the slots are free again
        return outcomes, again

    outcomes, again = asyncio.run(scenario())
    refused = [o for o in outcomes if isinstance(o, openai.RateLimitError)]
    served = [o for o in outcomes if isinstance(o, list)]
    assert len(served) + len(refused) == 6, outcomes
    assert 1 <= len(served) <= 2, len(served)
    assert {e.body["type"] for e in refused} == {"concurrency"}  # type: ignore[index]
    assert isinstance(again, list)


def test_a_key_added_to_keys_dir_works_without_a_restart(garden: RunningGarden) -> None:
    keys_dir = Path(str(garden.config.router.auth.keys_dir))
    secret = f"sk-late-{time.monotonic_ns()}"
    client = openai.OpenAI(base_url=garden.endpoint, api_key=secret, max_retries=0, timeout=60)
    with pytest.raises(openai.AuthenticationError):
        client.models.list()
    (keys_dir / "late").write_text(secret)
    try:
        # Both routers re-read the directory at their next health check (every 10 s).
        deadline = time.monotonic() + 40
        ok_in_a_row = 0
        while ok_in_a_row < 6:
            assert time.monotonic() < deadline, "the new key was not picked up by both routers"
            try:
                fresh = openai.OpenAI(
                    base_url=garden.endpoint, api_key=secret, max_retries=0, timeout=60
                )
                fresh.models.list()
                ok_in_a_row += 1
            except openai.AuthenticationError:
                ok_in_a_row = 0
                time.sleep(1)
    finally:
        (keys_dir / "late").unlink()


def test_usage_per_key_is_in_prometheus_and_garden_keys_usage(garden: RunningGarden) -> None:
    client = openai.OpenAI(
        base_url=garden.endpoint, api_key=_secret("few"), max_retries=0, timeout=60
    )
    reply = client.chat.completions.create(model="generalist", messages=MESSAGES, max_tokens=3)
    assert reply.usage is not None
    unnamed = openai.OpenAI(
        base_url=garden.endpoint, api_key=TEST_API_KEY, max_retries=0, timeout=60
    )
    unnamed.completions.create(model="generalist", prompt="Hello", max_tokens=2)
    # The routers count an answer's usage just after sending it: poll briefly.
    deadline = time.monotonic() + 15
    while True:
        result = CliRunner().invoke(cli, ["keys", "usage", "--json"])
        assert result.exit_code == 0, result.output
        usage = json.loads(result.output)["keys"]
        if {"few", "default"} <= set(usage) or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert usage["few"]["requests"] >= 1
    assert usage["few"]["completion_tokens"] >= 3
    assert usage["few"]["spend"] > 0
    assert usage["default"]["requests"] >= 1  # the keys of api_keys_env
    table = CliRunner().invoke(cli, ["keys", "usage"])
    assert table.exit_code == 0 and "few" in table.output
    # Ray's metrics agent exports every few seconds.
    deadline = time.monotonic() + 60
    while True:
        text = httpx.get(garden.metrics_url, timeout=10).text
        lines = [line for line in text.splitlines() if line.startswith("ray_garden_key_")]
        found = {line.split("{")[0] for line in lines if 'key="few"' in line}
        wanted = {"ray_garden_key_requests_total", "ray_garden_key_tokens_total"}
        if wanted <= found and any("ray_garden_key_rate_limited_total" in line for line in lines):
            break
        assert time.monotonic() < deadline, lines
        time.sleep(2)
