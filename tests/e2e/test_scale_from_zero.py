"""Scale from zero with generalist cover, through the real controller and router.

The session garden starts ``COLD_MODEL`` (a specialist under the garden
policy, ``min_replicas: 0``) at zero replicas. Requests of its domain go to
the generalist: ``unhealthy`` while no replica is starting, and their spills
are the specialist's demand, so the garden policy in Serve's controller
starts one; ``cold_start`` while it starts; and back to the specialist
(``specialist``) once it runs. Nothing is lost on the way. Then a burst of
long prompts grows it past what its request count asks for, and once idle
past its hold it goes back to zero, and its domain to the generalist.
"""

from __future__ import annotations

import asyncio
import math
import time
import uuid
from dataclasses import dataclass

import openai
import pytest

from router._health import replica_counts
from tests._replicas import wait_until_healthy
from tests.conftest import COLD_MODEL, COLD_START_S, RunningGarden

pytestmark = [pytest.mark.e2e, pytest.mark.garden_as_started]

#: Questions of the cold model's domain, written for this test.
LAW = [
    "My landlord kept my security deposit without an itemized list of damages. "
    "Can I sue him in small claims court, and which statute applies?",
    "Is a verbal agreement to sell a house an enforceable contract, or does the "
    "statute of frauds require it in writing?",
    "What must a plaintiff prove to win a negligence claim in tort law?",
]

#: Longest wait for the cold start (one tiny replica on a small shared machine).
COLD_START_TIMEOUT_S = 600.0


@dataclass(frozen=True)
class Served:
    started: float  # monotonic seconds, when the request was sent
    reason: str
    model: str
    fallback_from: str | None


def _counts(app: str) -> tuple[int, int]:
    counts = replica_counts(app)
    running, starting = counts.running, counts.starting
    return running.get(COLD_MODEL, 0), starting.get(COLD_MODEL, 0)


async def _send(aclient: openai.AsyncOpenAI, text: str) -> Served:
    started = time.monotonic()
    raw = await aclient.chat.completions.with_raw_response.create(
        model="auto", messages=[{"role": "user", "content": text}], max_tokens=8
    )
    reply = raw.parse()
    assert reply.choices[0].message.content is not None
    return Served(
        started,
        raw.headers["x-garden-reason"],
        raw.headers["x-garden-model"],
        raw.headers.get("x-garden-fallback-from"),
    )


async def _until_the_specialist_serves(garden: RunningGarden, workers: int) -> list[Served]:
    """Send the domain's questions from ``workers`` loops until the specialist has served each."""
    aclient = openai.AsyncOpenAI(
        base_url=garden.endpoint, api_key="unused", max_retries=0, timeout=120
    )
    served: list[Served] = []
    deadline = time.monotonic() + COLD_START_TIMEOUT_S

    async def loop(n: int) -> None:
        while time.monotonic() < deadline:
            got = await _send(aclient, LAW[n % len(LAW)])
            served.append(got)
            if got.reason == "specialist":
                return
            await asyncio.sleep(0.2)

    try:
        await asyncio.gather(*(loop(n) for n in range(workers)))
    finally:
        await aclient.close()
    return sorted(served, key=lambda s: s.started)


def test_a_specialist_at_zero_is_covered_by_the_generalist_while_it_starts(
    garden: RunningGarden,
) -> None:
    app = garden.config.name
    assert garden.config.policy_of(garden.config.model(COLD_MODEL)) == "garden"
    assert _counts(app) == (0, 0), "the cold model must start at zero replicas"

    served = asyncio.run(_until_the_specialist_serves(garden, workers=4))

    reasons = [s.reason for s in served]
    assert set(reasons) <= {"unhealthy", "cold_start", "specialist"}, reasons
    # Before any replica is starting its domain is unhealthy; the spills made
    # the garden policy start one, which the router reports as a cold start.
    assert reasons[0] == "unhealthy", reasons
    assert "cold_start" in reasons, reasons
    covered = [s for s in served if s.reason != "specialist"]
    assert all(s.model == "generalist" and s.fallback_from == COLD_MODEL for s in covered)
    # Once the specialist serves, its domain stays with it.
    first_own = min(s.started for s in served if s.reason == "specialist")
    late = [s for s in covered if s.started > first_own + 2.0]  # one state refresh of slack
    assert not late, late
    assert reasons.count("specialist") == 4, reasons  # every loop ended at the specialist
    assert all(s.model == COLD_MODEL for s in served if s.reason == "specialist")
    assert _counts(app) == (1, 0)


#: Closed-loop clients of the long-prompt burst: far under the cold model's
#: target_ongoing_requests, so a request count asks for one replica.
BURST_CLIENTS = 6
BURST_TIMEOUT_S = 300.0


def _long_prompt(client: openai.OpenAI, tokens: int) -> tuple[str, int]:
    """A prompt of about ``tokens`` prompt tokens for the cold model (measured, not guessed)."""
    sentence = "The lessee shall keep the premises in good repair at its own cost. "
    probe = client.completions.create(model=COLD_MODEL, prompt=sentence * 20, max_tokens=1)
    per_sentence = probe.usage.prompt_tokens / 20 if probe.usage else 16.0
    text = sentence * int(tokens / per_sentence)
    return text, int(len(text) / len(sentence) * per_sentence)


def test_a_long_prompt_burst_scales_a_specialist_the_request_count_would_not(
    garden: RunningGarden,
) -> None:
    """Prefill work, not the request count, sizes the specialist (garden policy, live)."""
    app = garden.config.name
    spec = garden.config.model(COLD_MODEL)
    assert _counts(app) == (1, 0), "runs after the scale-from-zero test, at one replica"
    assert spec.autoscaling.target_ongoing_requests > BURST_CLIENTS
    client = openai.OpenAI(base_url=garden.endpoint, api_key="unused", max_retries=0, timeout=120)
    budget = int(spec.engine["max_model_len"]) - 8
    text, size = _long_prompt(client, int(budget * 0.8))
    assert size <= budget

    async def burst() -> tuple[int, int]:
        aclient = openai.AsyncOpenAI(
            base_url=garden.endpoint, api_key="unused", max_retries=0, timeout=120
        )
        in_flight, most, done = 0, 0, 0
        deadline = time.monotonic() + BURST_TIMEOUT_S

        async def grown() -> bool:
            running, starting = await asyncio.to_thread(_counts, app)
            return running + starting >= 2

        async def loop() -> None:
            nonlocal in_flight, most, done
            while time.monotonic() < deadline and not stop.is_set():
                in_flight += 1
                most = max(most, in_flight)
                try:  # a fresh first token each time: no prefix-cache hit
                    await aclient.completions.create(
                        model=COLD_MODEL, prompt=f"{uuid.uuid4().hex} {text}", max_tokens=4
                    )
                finally:
                    in_flight -= 1
                done += 1

        stop = asyncio.Event()
        tasks = [asyncio.create_task(loop()) for _ in range(BURST_CLIENTS)]
        try:
            while time.monotonic() < deadline and not await grown():
                await asyncio.sleep(1.0)
        finally:
            stop.set()
            await asyncio.gather(*tasks)
            await aclient.close()
        return most, done

    most, done = asyncio.run(burst())
    running, starting = _counts(app)
    assert running + starting >= 2, f"no second replica in {BURST_TIMEOUT_S} s ({done} prompts)"
    # Ray's rule, running requests over the target, would have asked for one replica.
    assert math.ceil(most / spec.autoscaling.target_ongoing_requests) == 1, most
    wait_until_healthy(app, COLD_MODEL)  # the tests after this one see a settled garden


#: Longest wait for the idle cold model to go back to zero: its rent-or-buy
#: hold (5 of the test profile's cold starts with no gap history) and the
#: replicas' graceful shutdown, with CI's slack.
BACK_TO_ZERO_TIMEOUT_S = 8 * COLD_START_S + 120


def test_an_idle_specialist_goes_back_to_zero_and_its_domain_to_the_generalist(
    garden: RunningGarden,
) -> None:
    """After the burst, the garden policy releases law's replicas once its hold is over."""
    app = garden.config.name
    deadline = time.monotonic() + BACK_TO_ZERO_TIMEOUT_S
    seen = [_counts(app)]
    while seen[-1] != (0, 0) and time.monotonic() < deadline:
        time.sleep(2)
        if (now := _counts(app)) != seen[-1]:
            seen.append(now)
    assert seen[-1] == (0, 0), f"law did not go back to zero in {BACK_TO_ZERO_TIMEOUT_S} s: {seen}"
    # Every router sees it at its next refresh (a request before may still try law).
    time.sleep(3 * garden.config.router.state_refresh_s + 0.5)
    # Its domain is the generalist's again (and the spill starts a replica anew).
    served = asyncio.run(_one(garden, LAW[0]))
    assert (served.reason, served.model, served.fallback_from) in {
        ("unhealthy", "generalist", COLD_MODEL),
        ("cold_start", "generalist", COLD_MODEL),
    }
    wait_until_healthy(app, COLD_MODEL)  # that spill starts it again: let it settle


async def _one(garden: RunningGarden, text: str) -> Served:
    aclient = openai.AsyncOpenAI(base_url=garden.endpoint, api_key="unused", max_retries=0)
    try:
        return await _send(aclient, text)
    finally:
        await aclient.close()
