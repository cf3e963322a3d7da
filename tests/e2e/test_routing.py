"""Specialized-first routing through the virtual model ``auto``, over HTTP.

Every test goes through the official ``openai`` client against the session
garden; stalls and failures are real (a stopped or killed replica process).
Tests that disturb a model run last and wait for it to recover.
"""

from __future__ import annotations

import asyncio
import re
import time
import uuid
from typing import Any

import httpx
import openai
import pytest

from cluster.lifecycle import status
from tests._replicas import replica_processes, wait_until_healthy
from tests.conftest import ADAPTER, ADAPTER_MODEL, TEST_DEADLINE_MS, TOOLS_MODEL, RunningGarden

# Every specialist must serve; the test garden's cold model idles at zero.
pytestmark = [pytest.mark.e2e, pytest.mark.usefixtures("cold_model_up")]

MEDICAL = (
    "A 62-year-old woman with type 2 diabetes has an HbA1c of 8.9% on metformin. "
    "Which drug should be added, and what are its side effects?"
)
OBVIOUS = [
    (MEDICAL, "medicine", "medicine"),
    (
        "My landlord kept my security deposit without an itemized list of damages. "
        "Can I sue him in small claims court, and which statute applies?",
        "law",
        "law",
    ),
    (
        "How do I compute the yield to maturity of a bond with a 5% annual coupon "
        "trading at 95 with eight years left?",
        "finance",
        "finance",
    ),
    (
        "Fix this Python function so it returns the sum: def add(a, b): return a - b",
        "code",
        "code",
    ),
    (
        "Suggest a three-day itinerary for a family holiday in Lisbon with two kids.",
        "general",
        "generalist",
    ),
]


@pytest.fixture(scope="module")
def client(garden: RunningGarden) -> openai.OpenAI:
    return openai.OpenAI(base_url=garden.endpoint, api_key="unused", max_retries=0, timeout=120)


def _async_client(garden: RunningGarden) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(
        base_url=garden.endpoint, api_key="unused", max_retries=0, timeout=300
    )


def _messages(text: str) -> list[Any]:
    return [{"role": "user", "content": text}]


def _wait_until_routed_to_medicine(garden: RunningGarden, timeout_s: float = 60) -> None:
    """Wait until routed medical requests go to medicine again, through every router.

    A test that disturbs medicine must start from routers that choose it: a
    router still counts an earlier test's streams until their disconnects
    reach it (a few hundred ms), and keeps a model that just failed or
    missed a deadline in cooldown until its own probe answers. Each probe
    opens a new connection, which HAProxy gives to the least busy router,
    so several in a row reach both.
    """
    in_a_row = 2 * garden.config.router.num_replicas
    deadline = time.monotonic() + timeout_s
    reason, seen = None, 0
    while time.monotonic() < deadline:
        with openai.OpenAI(
            base_url=garden.endpoint, api_key="unused", max_retries=0, timeout=60
        ) as probe:
            raw = probe.chat.completions.with_raw_response.create(
                model="auto", messages=_messages(MEDICAL), max_tokens=1
            )
        reason = raw.headers["x-garden-reason"]
        seen = seen + 1 if reason == "specialist" else 0
        if seen == in_a_row:
            return
        time.sleep(0.25)
    pytest.fail(f"routed medical requests still went elsewhere after {timeout_s} s: {reason}")


def test_auto_is_listed_first(client: openai.OpenAI) -> None:
    ids = [m.id for m in client.models.list().data]
    assert ids[0] == "auto" and "generalist" in ids
    assert client.models.retrieve("auto").id == "auto"


@pytest.mark.parametrize(("text", "domain", "model"), OBVIOUS)
def test_obvious_prompts_reach_their_model(
    garden: RunningGarden, client: openai.OpenAI, text: str, domain: str, model: str
) -> None:
    request_id = uuid.uuid4().hex
    raw = client.chat.completions.with_raw_response.create(
        model="auto",
        messages=_messages(text),
        max_tokens=8,
        extra_headers={"x-request-id": request_id},
        extra_body={"ignore_eos": True},  # a tiny model may sample EOS first
    )
    headers = raw.headers
    assert headers["x-garden-model"] == model
    assert headers["x-garden-domain"] == domain
    assert headers["x-garden-reason"] == ("general" if model == "generalist" else "specialist")
    assert 0.0 <= float(headers["x-garden-confidence"]) <= 1.0
    assert "x-garden-fallback-from" not in headers
    reply = raw.parse()
    assert reply.model == model and reply.choices[0].message.content
    # The span says what the headers say.
    attrs = garden.spans.wait_for("garden.request.id", request_id)["attributes"]
    assert attrs["gen_ai.request.model"] == "auto"
    assert attrs["gen_ai.response.model"] == model
    assert attrs["garden.route.reason"] == headers["x-garden-reason"]
    assert attrs["garden.route.domain"] == domain
    assert attrs["garden.route.confidence"] == pytest.approx(
        float(headers["x-garden-confidence"]), abs=1e-4
    )
    assert reply.usage is not None
    assert attrs["gen_ai.usage.input_tokens"] == reply.usage.prompt_tokens
    assert attrs["gen_ai.usage.output_tokens"] == reply.usage.completion_tokens == 8


def test_streams_and_completions_are_routed(client: openai.OpenAI) -> None:
    raw = client.chat.completions.with_raw_response.create(
        model="auto", messages=_messages(OBVIOUS[3][0]), max_tokens=8, stream=True
    )
    assert raw.headers["x-garden-model"] == "code"
    chunks = list(raw.parse())
    assert chunks and all(c.model == "code" for c in chunks)
    raw_completion = client.completions.with_raw_response.create(
        model="auto", prompt=OBVIOUS[1][0], max_tokens=8
    )
    assert raw_completion.headers["x-garden-model"] == "law"
    assert raw_completion.parse().choices[0].text


def test_spoofed_explanation_headers_are_ignored(client: openai.OpenAI) -> None:
    spoofed = {
        "x-garden-model": "law",
        "x-garden-domain": "law",
        "x-garden-reason": "overloaded",
        "x-garden-confidence": "1.0",
        "x-garden-fallback-from": "medicine",
    }
    raw = client.chat.completions.with_raw_response.create(
        model="auto", messages=_messages(OBVIOUS[3][0]), max_tokens=4, extra_headers=spoofed
    )
    assert raw.headers["x-garden-model"] == "code"
    assert raw.headers["x-garden-reason"] == "specialist"
    assert "x-garden-fallback-from" not in raw.headers
    assert raw.parse().model == "code"


def test_a_never_fallback_virtual_model_is_configured(client: openai.OpenAI) -> None:
    listed = {m.id for m in client.models.list().data}
    assert "auto-strict" in listed
    raw = client.chat.completions.with_raw_response.create(
        model="auto-strict", messages=_messages(OBVIOUS[2][0]), max_tokens=4
    )
    assert raw.headers["x-garden-model"] == "finance"
    assert raw.parse().model == "finance"


def test_a_named_model_is_not_routed(client: openai.OpenAI) -> None:
    raw = client.chat.completions.with_raw_response.create(
        model="code", messages=_messages(MEDICAL), max_tokens=4
    )
    assert raw.parse().model == "code"
    assert not any(k.startswith("x-garden-") for k in raw.headers)


def test_an_adapter_owned_domain_is_served_by_the_adapter(client: openai.OpenAI) -> None:
    """The tax domain belongs to a LoRA adapter on finance, fetched from S3 on first use."""
    served = f"{ADAPTER_MODEL}:{ADAPTER}"
    question = "How are incentive stock options taxed when I exercise them, and does AMT apply?"
    raw = client.chat.completions.with_raw_response.create(
        model="auto", messages=_messages(question), max_tokens=8, temperature=0
    )
    assert raw.headers["x-garden-model"] == served
    assert raw.headers["x-garden-domain"] == "tax"
    assert raw.headers["x-garden-reason"] == "specialist"
    reply = raw.parse()
    assert reply.model == served
    # The adapter's weights are applied: greedy decoding differs from the base model's.
    base = client.chat.completions.create(
        model=ADAPTER_MODEL, messages=_messages(question), max_tokens=8, temperature=0
    )
    assert reply.choices[0].message.content != base.choices[0].message.content


ITINERARY = OBVIOUS[4][0]


def test_a_conversation_stays_on_its_specialist(
    garden: RunningGarden, client: openai.OpenAI
) -> None:
    """Turns of one session go where its first turn went, whatever the later turns say."""
    session = {"x-session-id": uuid.uuid4().hex}
    first = client.chat.completions.with_raw_response.create(
        model="auto", messages=_messages(MEDICAL), max_tokens=4, extra_headers=session
    )
    assert (first.headers["x-garden-model"], first.headers["x-garden-reason"]) == (
        "medicine",
        "specialist",
    )
    history = [
        *_messages(MEDICAL),
        {"role": "assistant", "content": first.parse().choices[0].message.content or "ok"},
        *_messages(ITINERARY),
    ]
    request_id = uuid.uuid4().hex
    second = client.chat.completions.with_raw_response.create(
        model="auto",
        messages=history,
        max_tokens=4,
        extra_headers={**session, "x-request-id": request_id},
    )
    assert second.headers["x-garden-model"] == "medicine"
    assert second.headers["x-garden-reason"] == "session"
    attrs = garden.spans.wait_for("garden.request.id", request_id)["attributes"]
    assert attrs["garden.route.reason"] == "session"
    assert attrs["garden.route.session_reason"] == "specialist"
    # Outside the session the same turn goes to the generalist: the session kept it.
    alone = client.chat.completions.with_raw_response.create(
        model="auto", messages=_messages(ITINERARY), max_tokens=4
    )
    assert alone.headers["x-garden-model"] == "generalist"


def test_the_openai_user_field_names_a_conversation(client: openai.OpenAI) -> None:
    user = f"user-{uuid.uuid4().hex}"
    law = OBVIOUS[1][0]
    first = client.chat.completions.with_raw_response.create(
        model="auto", messages=_messages(law), max_tokens=4, user=user
    )
    assert first.headers["x-garden-model"] == "law"
    later = client.completions.with_raw_response.create(
        model="auto", prompt=ITINERARY, max_tokens=4, user=user
    )
    assert (later.headers["x-garden-model"], later.headers["x-garden-reason"]) == (
        "law",
        "session",
    )


TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "dose_calculator",
            "description": "Weight-based dose of a drug.",
            "parameters": {
                "type": "object",
                "properties": {"drug": {"type": "string"}, "kg": {"type": "number"}},
                "required": ["drug", "kg"],
            },
        },
    }
]


def test_a_tools_request_reaches_the_model_that_serves_tools(client: openai.OpenAI) -> None:
    """Medicine and the generalist have no tool parser: only the tools model may answer."""
    raw = client.chat.completions.with_raw_response.create(
        model="auto", messages=_messages(MEDICAL), tools=TOOLS, max_tokens=8
    )
    assert raw.headers["x-garden-model"] == TOOLS_MODEL
    assert raw.headers["x-garden-reason"] == "unsupported"
    assert raw.headers["x-garden-fallback-from"] == "medicine"
    assert raw.parse().model == TOOLS_MODEL
    # Without tools, or with tool_choice "none", medicine answers as before.
    plain = client.chat.completions.with_raw_response.create(
        model="auto", messages=_messages(MEDICAL), tools=TOOLS, tool_choice="none", max_tokens=4
    )
    assert plain.headers["x-garden-model"] == "medicine"


def test_a_request_no_model_can_serve_is_a_clear_400(client: openai.OpenAI) -> None:
    image = {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}}
    content = [{"type": "text", "text": MEDICAL}, image]
    with pytest.raises(openai.BadRequestError) as info:
        client.chat.completions.create(
            model="auto", messages=[{"role": "user", "content": content}], max_tokens=4
        )
    assert info.value.status_code == 400
    body = info.value.body
    assert isinstance(body, dict)
    assert body["code"] == "unsupported_feature" and body["param"] == "messages"
    assert "medicine lacks images" in body["message"]
    assert "generalist lacks images" in body["message"]


def test_route_metrics_are_exported_through_ray(garden: RunningGarden) -> None:
    """``garden_route_total`` counts what the headers said (Ray adds its ``ray_`` prefix).

    Each router replica exports its own series (its ``WorkerId``): summed.
    """
    series = re.compile(
        r'^ray_garden_route_total\{(?=[^}]*domain="law")(?=[^}]*model="law")'
        r'(?=[^}]*reason="specialist")[^}]*\} (\d+(?:\.\d+)?)',
        re.MULTILINE,
    )
    deadline = time.monotonic() + 60
    text = ""
    while time.monotonic() < deadline:
        text = httpx.get(garden.metrics_url, timeout=10).text
        counted = sum(float(n) for n in series.findall(text))
        if counted >= 2 and "ray_garden_route_decision_seconds_bucket" in text:
            return
        time.sleep(2)
    found = [line for line in text.splitlines() if "garden_route" in line][:10]
    pytest.fail(f"no law/law/specialist route count >= 2 exported; saw {found}")


def test_saturated_specialist_spills_to_the_generalist(garden: RunningGarden) -> None:
    # Fill every running replica (the autoscaler may have added one earlier).
    running = next(p for p in status(garden.config.name) if p.name == "medicine").running
    limit = garden.config.model("medicine").limits.max_ongoing_requests * running

    async def scenario() -> Any:
        aclient = _async_client(garden)
        streams = await asyncio.gather(
            *(
                aclient.chat.completions.create(
                    model="medicine",
                    messages=_messages(MEDICAL),
                    max_tokens=1500,
                    stream=True,
                    extra_body={"ignore_eos": True},
                )
                for _ in range(limit)
            )
        )
        try:
            await asyncio.gather(*(anext(aiter(s)) for s in streams))  # all are running
            # Each router learns the others' outstanding requests at its next refresh.
            await asyncio.sleep(3 * garden.config.router.state_refresh_s + 0.5)
            return await aclient.chat.completions.with_raw_response.create(
                model="auto", messages=_messages(MEDICAL), max_tokens=4
            )
        finally:
            await asyncio.gather(*(s.close() for s in streams))
            await aclient.close()

    raw = asyncio.run(scenario())
    assert raw.headers["x-garden-reason"] == "overloaded"
    assert raw.headers["x-garden-fallback-from"] == "medicine"
    assert raw.headers["x-garden-model"] == "generalist"
    assert raw.parse().model == "generalist"


def test_stalled_specialist_stream_is_served_by_the_generalist(
    garden: RunningGarden, client: openai.OpenAI
) -> None:
    _wait_until_routed_to_medicine(garden)
    # The autoscaler may have added a replica under earlier tests' load: stall all.
    replicas = replica_processes(garden.config.name, "medicine")
    for replica in replicas:
        replica.suspend()  # SIGSTOP: the replica accepts nothing and answers nothing
    try:
        started = time.monotonic()
        raw = client.chat.completions.with_raw_response.create(
            model="auto",
            messages=_messages(MEDICAL),
            max_tokens=8,
            stream=True,
            extra_body={"ignore_eos": True},
        )
        waited_ms = (time.monotonic() - started) * 1000
    finally:
        for replica in replicas:
            replica.resume()
    assert raw.headers["x-garden-reason"] == "first_token_deadline"
    assert raw.headers["x-garden-fallback-from"] == "medicine"
    assert raw.headers["x-garden-model"] == "generalist"
    assert waited_ms >= TEST_DEADLINE_MS
    chunks = list(raw.parse())
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert all(c.model == "generalist" for c in chunks)


def test_a_stalled_specialist_costs_one_deadline_then_cools_down(garden: RunningGarden) -> None:
    """SIGSTOP medicine: only the first routed stream waits out the deadline.

    One waiting beside it leaves when it misses; later ones go straight to
    the generalist (``unhealthy``, a cooldown) at its normal speed; once the
    replicas run again, routed traffic is back on medicine within a
    cooldown and a probe.
    """
    app = garden.config.name
    deadline_s = TEST_DEADLINE_MS / 1000
    cooldown_s = garden.config.router.cooldown.cooldown_s
    _wait_until_routed_to_medicine(garden)
    replicas = replica_processes(app, "medicine")

    async def one(aclient: openai.AsyncOpenAI, at: float) -> tuple[str, str, float]:
        await asyncio.sleep(at)
        started = time.monotonic()
        raw = await aclient.chat.completions.with_raw_response.create(
            model="auto",
            messages=_messages(MEDICAL),
            max_tokens=4,
            stream=True,
            extra_body={"ignore_eos": True},
        )
        first_s = time.monotonic() - started  # headers come with the first token
        async for _ in raw.parse():
            pass
        return raw.headers["x-garden-reason"], raw.headers["x-garden-model"], first_s

    async def stalled() -> list[tuple[str, str, float]]:
        aclient = _async_client(garden)
        try:
            arrivals = (0.0, deadline_s - 1.0, deadline_s + 1.0, deadline_s + 2.0)
            return list(await asyncio.gather(*(one(aclient, at) for at in arrivals)))
        finally:
            await aclient.close()

    for replica in replicas:
        replica.suspend()
    try:
        first, beside, *after = asyncio.run(stalled())
    finally:
        for replica in replicas:
            replica.resume()
    resumed = time.monotonic()
    assert first[:2] == ("first_token_deadline", "generalist") and first[2] >= deadline_s
    assert beside[:2] == ("unhealthy", "generalist"), beside
    assert beside[2] < deadline_s  # left when the first missed, not at its own deadline
    for reason, model, first_s in after:
        assert (reason, model) == ("unhealthy", "generalist")
        assert first_s < deadline_s / 2  # the generalist's own speed, no wait
    _wait_until_routed_to_medicine(garden, timeout_s=cooldown_s + 30)
    # Within the cooldown that began at the first miss, plus the probe's answer.
    assert time.monotonic() - resumed < cooldown_s + 5


def test_killed_specialist_under_load_loses_no_request(garden: RunningGarden) -> None:
    """Open-loop load (a new request every 0.25 s) across killing every medicine replica.

    Requests issued while the specialist has no running replica go to the
    generalist (``unhealthy``, or ``specialist_error`` when the dispatch hits
    the dead replica); none may fail.
    """
    app = garden.config.name
    _wait_until_routed_to_medicine(garden)

    async def one(aclient: openai.AsyncOpenAI) -> str:
        raw = await aclient.chat.completions.with_raw_response.create(
            model="auto", messages=_messages(MEDICAL), max_tokens=48
        )
        assert raw.parse().choices[0].message.content is not None
        return raw.headers["x-garden-reason"]

    async def scenario() -> list[str]:
        aclient = _async_client(garden)
        tasks: list[asyncio.Task[str]] = []
        try:
            for tick in range(80):  # 20 s of arrivals
                if tick == 12:
                    for replica in replica_processes(app, "medicine"):
                        await asyncio.to_thread(replica.kill)
                tasks.append(asyncio.create_task(one(aclient)))
                await asyncio.sleep(0.25)
            return list(await asyncio.gather(*tasks))  # any failed request raises here
        finally:
            await aclient.close()

    try:
        reasons = asyncio.run(scenario())
    finally:
        wait_until_healthy(app, "medicine")
    assert "specialist" in reasons
    assert {"specialist_error", "unhealthy"} & set(reasons), reasons


def test_streams_in_flight_go_on_on_the_generalist_when_their_specialist_dies(
    garden: RunningGarden,
) -> None:
    """kill -9 every medicine replica while 50 routed streams are mid-answer, 10 more arriving.

    Each stream goes on on the generalist: the client sees one stream, with
    one id, ending in [DONE] with no error, the chunks after the switch
    naming the generalist; no stream sends more tokens than asked for. Two
    of the streams ask for two choices (``n`` 2): each choice goes on.
    """
    app = garden.config.name
    _wait_until_routed_to_medicine(garden)
    streams_n, max_tokens, arriving, paired = 50, 400, 10, 2

    async def one(
        aclient: openai.AsyncOpenAI, started: asyncio.Event, count: list[int], n: int = 1
    ) -> Any:
        stream = await aclient.chat.completions.create(
            model="auto",
            messages=_messages(MEDICAL),
            max_tokens=max_tokens,
            stream=True,
            n=n,
            extra_body={"ignore_eos": True},
        )
        ids, models, tokens = set(), [], dict.fromkeys(range(n), 0)
        async for chunk in stream:  # an error event raises here
            ids.add(chunk.id)
            models.append(chunk.model)
            for choice in chunk.choices:
                if choice.delta.content:
                    tokens[choice.index] += 1
                    if sum(tokens.values()) == 1:
                        count[0] += 1
                        if count[0] == streams_n:
                            started.set()
        return ids, models, tokens

    async def scenario() -> list[Any]:
        aclient = _async_client(garden)
        started, count = asyncio.Event(), [0]
        try:
            tasks = [
                asyncio.create_task(one(aclient, started, count, 2 if i < paired else 1))
                for i in range(streams_n)
            ]
            await asyncio.wait_for(started.wait(), 180)  # every stream is mid-answer
            for replica in replica_processes(app, "medicine"):
                await asyncio.to_thread(replica.kill)
            late = []
            for _ in range(arriving):  # more arrive while medicine is down
                late.append(asyncio.create_task(one(aclient, asyncio.Event(), [0])))
                await asyncio.sleep(0.2)
            await asyncio.gather(*late)  # none may end in error
            return list(await asyncio.gather(*tasks))
        finally:
            await aclient.close()

    try:
        results = asyncio.run(scenario())
    finally:
        wait_until_healthy(app, "medicine")
    resumed = 0
    for ids, models, tokens in results:
        assert len(ids) == 1, ids  # one stream, one id
        assert models[0] == "medicine"
        assert all(0 < t <= max_tokens for t in tokens.values()), tokens  # every choice
        resumed += models[-1] == "generalist"
    assert resumed >= streams_n // 2, [m[-1] for _, m, _ in results]  # most were still going
    for _, models, tokens in results[:paired]:  # both choices of each went on
        assert len(tokens) == 2 and models[-1] == "generalist", (models[-1], tokens)


def test_requests_waiting_on_a_killed_specialist_fall_back(garden: RunningGarden) -> None:
    """Requests dispatched to the specialist, still waiting for their head, when it dies.

    The replicas are stopped first (SIGSTOP), so the requests are surely in
    flight and unanswered, then killed. Serve would hold such requests for
    the replacement replica, a cold start away; the router abandons them as
    soon as the model has no running replica and the generalist serves them.
    """
    app = garden.config.name
    _wait_until_routed_to_medicine(garden)
    replicas = replica_processes(app, "medicine")

    async def one(aclient: openai.AsyncOpenAI) -> tuple[str, str]:
        raw = await aclient.chat.completions.with_raw_response.create(
            model="auto", messages=_messages(MEDICAL), max_tokens=16
        )
        assert raw.parse().choices[0].message.content is not None
        return raw.headers["x-garden-reason"], raw.headers["x-garden-model"]

    async def scenario() -> list[tuple[str, str]]:
        aclient = _async_client(garden)
        try:
            for replica in replicas:
                replica.suspend()
            tasks = [asyncio.create_task(one(aclient)) for _ in range(4)]
            await asyncio.sleep(2)  # dispatched to the stopped specialist, unanswered
            early = [t.exception() or t.result() for t in tasks if t.done()]
            assert not early, f"answered while medicine was stopped: {early}"
            for replica in replicas:
                await asyncio.to_thread(replica.kill)
            return list(await asyncio.gather(*tasks))
        finally:
            await aclient.close()

    try:
        served = asyncio.run(scenario())
    finally:
        wait_until_healthy(app, "medicine")
    assert served == [("specialist_error", "generalist")] * 4
