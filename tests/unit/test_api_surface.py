"""The router's routes beyond chat and completions: Responses, embeddings, tokenize.

Each route reaches the right model's replica with its endpoint name, or is
refused with a 400 naming ``model`` (code ``model_not_supported``) before
any model is called. The router's real app runs in-process (``tests._ingress``).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from starlette.testclient import TestClient

from router._needs import needs_of
from router._telemetry import usage_of
from router.classify import request_text
from tests._ingress import FakeHandle, lexical_garden, serve_router

pytestmark = pytest.mark.unit

MEDICAL = "What is the first-line treatment for hypertension in adults with diabetes?"


@pytest.fixture
def served(
    data_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[TestClient, dict[str, FakeHandle]]]:
    with serve_router(lexical_garden(data_dir), monkeypatch) as app:
        yield app


def _refused(response: Any) -> dict[str, Any]:
    assert response.status_code == 400, response.text
    error = dict(response.json()["error"])
    assert (error["param"], error["code"]) == ("model", "model_not_supported"), error
    return error


def _called(handles: dict[str, FakeHandle]) -> dict[str, list[str]]:
    return {name: h.endpoints for name, h in handles.items() if h.endpoints}


def test_auto_routes_a_responses_request_by_its_input(
    served: tuple[TestClient, dict[str, FakeHandle]],
) -> None:
    http, handles = served
    response = http.post("/v1/responses", json={"model": "auto", "input": MEDICAL})
    assert response.status_code == 200, response.text
    assert response.headers["x-garden-model"] == "medicine"
    assert _called(handles) == {"medicine": ["responses"]}
    body, _ = handles["medicine"].sent[0]
    assert body["model"] == "medicine" and body["input"] == MEDICAL
    # Message items are read like chat messages.
    items = [{"role": "user", "content": [{"type": "input_text", "text": MEDICAL}]}]
    response = http.post("/v1/responses", json={"model": "auto", "input": items})
    assert response.headers["x-garden-model"] == "medicine"


def test_embeddings_go_to_an_embedder_only(
    served: tuple[TestClient, dict[str, FakeHandle]],
) -> None:
    http, handles = served
    response = http.post("/v1/embeddings", json={"model": "embedder", "input": ["a", "b"]})
    assert response.status_code == 200, response.text
    assert _called(handles) == {"embedder": ["embeddings"]}
    assert (
        "embedder"
        in _refused(http.post("/v1/embeddings", json={"model": "law", "input": "a"}))["message"]
    )
    _refused(http.post("/v1/embeddings", json={"model": "auto", "input": "a"}))
    chat = {"model": "embedder", "messages": [{"role": "user", "content": "hi"}]}
    assert "embedding model" in _refused(http.post("/v1/chat/completions", json=chat))["message"]
    _refused(http.post("/v1/responses", json={"model": "embedder", "input": "hi"}))
    _refused(http.post("/v1/completions", json={"model": "embedder", "prompt": "hi"}))
    assert _called(handles) == {"embedder": ["embeddings"]}  # nothing else was sent


def test_tokenize_and_detokenize_name_a_served_model(
    served: tuple[TestClient, dict[str, FakeHandle]],
) -> None:
    http, handles = served
    assert http.post("/tokenize", json={"model": "law", "prompt": "hi"}).status_code == 200
    assert http.post("/detokenize", json={"model": "embedder", "tokens": [5]}).status_code == 200
    assert _called(handles) == {"law": ["tokenize"], "embedder": ["detokenize"]}
    assert (
        "no one tokenizer"
        in _refused(http.post("/tokenize", json={"model": "auto", "prompt": "hi"}))["message"]
    )
    _refused(http.post("/detokenize", json={"model": "auto-strict", "tokens": [1]}))
    assert http.post("/tokenize", json={"model": "nope", "prompt": "hi"}).status_code == 404


def test_model_cards_carry_the_context_window_and_the_role(
    served: tuple[TestClient, dict[str, FakeHandle]],
) -> None:
    http, _ = served
    cards = {c["id"]: c for c in http.get("/v1/models").json()["data"]}
    assert cards["embedder"]["role"] == "embedder"
    assert {cards[m]["max_model_len"] for m in ("law", "generalist", "embedder")} == {2048}


def test_adapters_get_their_own_cards(data_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    garden = lexical_garden(data_dir)
    data = garden.model_dump(mode="json")
    law = next(m for m in data["models"] if m["name"] == "law")
    law["lora"] = {
        "dynamic_lora_loading_path": "s3://adapters/law",
        "adapters": [
            {
                "name": "tax",
                "domains": ["tax"],
                "exemplars": ["capital gains tax", "VAT on imports"],
            }
        ],
    }
    with serve_router(type(garden).model_validate(data), monkeypatch) as (http, _):
        card = http.get("/v1/models/law:tax").json()
    assert (card["role"], card["parent"], card["domains"]) == ("adapter", "law", ["tax"])
    assert card["max_model_len"] == 2048


def test_the_responses_body_is_read_for_domain_and_needs() -> None:
    assert request_text({"input": MEDICAL}) == MEDICAL
    turns = [
        {"role": "user", "content": "earlier"},
        {"role": "assistant", "content": "reply"},
        {"role": "user", "content": [{"type": "input_text", "text": MEDICAL}]},
    ]
    assert request_text({"input": turns}).endswith(MEDICAL)
    needs = needs_of({"input": "x" * 1600, "max_output_tokens": 50})
    assert needs.tokens == 1600 // 16 + 50
    assert needs_of({"input": turns, "tools": [{"type": "function"}]}).tools
    image = {"type": "input_image", "image_url": "data:image/png;base64,AAAA"}
    assert needs_of({"input": [{"role": "user", "content": [image]}]}).images
    assert not needs_of({"input": turns}).images


def test_usage_is_read_from_responses_and_embeddings() -> None:
    done = {"type": "response.completed", "response": {"usage": {"input_tokens": 7,
            "output_tokens": 3, "total_tokens": 10}}}  # fmt: skip
    assert usage_of(f"event: response.completed\ndata: {json.dumps(done)}\n\n") == (7, 3)
    assert usage_of(json.dumps({"usage": {"input_tokens": 2, "output_tokens": 1}})) == (2, 1)
    embedded = {"object": "list", "usage": {"prompt_tokens": 4, "total_tokens": 4}}
    assert usage_of(json.dumps(embedded).encode()) == (4, 0)
    assert usage_of(json.dumps({"response": "usage"})) is None


def test_the_clients_trace_reaches_the_replica(
    data_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tests._ingress import FakeMetrics

    trace_id = "4bf92f3577b34da6a3ce929d0e0e4736"
    metrics = FakeMetrics()
    with serve_router(lexical_garden(data_dir), monkeypatch, metrics=metrics) as (http, handles):
        headers = {"traceparent": f"00-{trace_id}-00f067aa0ba902b7-01"}
        http.post("/v1/responses", json={"model": "auto", "input": MEDICAL}, headers=headers)
        http.post("/tokenize", json={"model": "law", "prompt": "hi"})
    # No tracer provider here (no telemetry.traces_endpoint): the client's trace
    # still passes through to the replica, and a request without one sends none.
    (sent,) = handles["medicine"].traces
    assert sent["traceparent"].split("-")[1] == trace_id
    assert handles["law"].traces == [{}]
    operations = [(args[0], args[1]) for args in metrics.genai]
    assert operations == [("chat", ("auto", "medicine")), ("tokenize", ("law", "law"))]
