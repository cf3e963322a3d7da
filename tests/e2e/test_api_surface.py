"""The garden's API beyond chat: embeddings, tool calls, Responses, tokenize.

Through the official ``openai`` client (``httpx`` for vLLM's own tokenize
routes), against the session garden: the router, Ray Serve LLM and vLLM.
"""

from __future__ import annotations

import json
import math

import httpx
import openai
import pytest

from tests.conftest import AUTH, TEST_API_KEY, TOOLS_MODEL, RunningGarden

pytestmark = pytest.mark.e2e

EMBEDDER = "embedder"

#: A tool whose argument is an enum, so that constrained decoding ends at once.
WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "The weather in a city.",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string", "enum": ["Paris", "Rome"]}},
            "required": ["city"],
        },
    },
}
ASK = [{"role": "user", "content": "What is the weather in Paris?"}]


@pytest.fixture(scope="module")
def client(garden: RunningGarden) -> openai.OpenAI:
    return openai.OpenAI(base_url=garden.endpoint, api_key=TEST_API_KEY, max_retries=0, timeout=120)


def test_embeddings_come_from_the_embedder(client: openai.OpenAI) -> None:
    texts = ["the patient has a fever", "the contract was void", "the patient has a fever"]
    reply = client.embeddings.create(model=EMBEDDER, input=texts)
    vectors = [d.embedding for d in sorted(reply.data, key=lambda d: d.index)]
    assert len(vectors) == 3 and {len(v) for v in vectors} == {128}  # the tiny hidden size
    assert all(math.isclose(math.fsum(x * x for x in v), 1.0, rel_tol=1e-3) for v in vectors)
    assert vectors[0] == pytest.approx(vectors[2]) and vectors[0] != pytest.approx(vectors[1])
    assert reply.usage.prompt_tokens > 0
    card = client.models.retrieve(EMBEDDER).model_dump()
    assert (card["role"], card["max_model_len"]) == ("embedder", 2048)


def test_embeddings_from_a_chat_model_are_a_400(client: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as err:
        client.embeddings.create(model="generalist", input="hi")
    assert err.value.code == "model_not_supported" and "embedder" in err.value.message
    with pytest.raises(openai.BadRequestError) as err:
        client.chat.completions.create(model=EMBEDDER, messages=ASK, max_tokens=4)
    assert err.value.code == "model_not_supported"


@pytest.mark.parametrize("model", [TOOLS_MODEL, "auto"])
def test_a_named_tool_is_called_and_its_result_answered(client: openai.OpenAI, model: str) -> None:
    reply = client.chat.completions.create(
        model=model,
        messages=ASK,
        tools=[WEATHER],
        tool_choice={"type": "function", "function": {"name": "get_weather"}},
        max_tokens=64,
    )
    assert reply.choices[0].finish_reason in {"stop", "tool_calls"}  # not cut at max_tokens
    calls = reply.choices[0].message.tool_calls
    assert calls and calls[0].type == "function"
    call = calls[0].function
    assert call.name == "get_weather"
    assert json.loads(call.arguments)["city"] in {"Paris", "Rome"}
    # The next turn renders the call and its result (the tiny chat template's tool turns).
    follow_up = client.chat.completions.create(
        model=model,
        messages=[
            *ASK,
            {"role": "assistant", "content": None, "tool_calls": [calls[0].model_dump()]},
            {"role": "tool", "tool_call_id": calls[0].id, "content": "sunny, 21 C"},
        ],
        tools=[WEATHER],
        max_tokens=8,
        extra_body={"ignore_eos": True},
    )
    assert follow_up.choices[0].finish_reason == "length"
    assert follow_up.usage is not None and follow_up.usage.completion_tokens == 8


@pytest.mark.parametrize("model", ["generalist", "auto"])
def test_responses_non_streaming_and_streaming(client: openai.OpenAI, model: str) -> None:
    reply = client.responses.create(
        model=model,
        input="What is the first-line treatment for hypertension?",
        max_output_tokens=8,
        extra_body={"ignore_eos": True},
    )
    # All 8 tokens (ignore_eos): OpenAI's "incomplete" at max_output_tokens.
    assert reply.status == "incomplete" and reply.output_text
    assert reply.incomplete_details is not None
    assert reply.incomplete_details.reason == "max_output_tokens"
    assert reply.usage is not None and reply.usage.output_tokens == 8
    events = list(
        client.responses.create(
            model=model,
            input=[{"role": "user", "content": "Name one symptom of influenza."}],
            max_output_tokens=8,
            stream=True,
            extra_body={"ignore_eos": True},
        )
    )
    kinds = [e.type for e in events]
    # vLLM ends a stream with response.completed, also when it stopped at max_output_tokens.
    assert kinds[0] == "response.created"
    assert kinds[-1] in {"response.completed", "response.incomplete"}
    deltas = "".join(e.delta for e in events if e.type == "response.output_text.delta")
    assert deltas and events[-1].response.output_text == deltas


def test_tokenize_and_detokenize_round_trip(garden: RunningGarden) -> None:
    base = garden.endpoint.removesuffix("/v1")
    with httpx.Client(base_url=base, headers=AUTH, timeout=60) as http:
        text = "The patient has a fever."
        tokens = http.post(
            "/tokenize", json={"model": "medicine", "prompt": text, "add_special_tokens": False}
        ).json()
        assert tokens["count"] == len(tokens["tokens"]) > 0
        assert tokens["max_model_len"] == 2048
        back = http.post("/detokenize", json={"model": "medicine", "tokens": tokens["tokens"]})
        assert back.json()["prompt"] == text
        chat = http.post(
            "/tokenize",
            json={"model": "generalist", "messages": [{"role": "user", "content": text}]},
        ).json()
        assert chat["count"] > tokens["count"]  # the chat template's role tags
        refused = http.post("/tokenize", json={"model": "auto", "prompt": text})
        assert refused.status_code == 400
        assert refused.json()["error"]["code"] == "model_not_supported"
        anonymous = httpx.post(f"{base}/tokenize", json={"model": "medicine", "prompt": text})
        assert anonymous.status_code == 401
