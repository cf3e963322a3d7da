"""One trace from the client's ``traceparent`` down to the model replica's span.

The session garden exports to a real OTLP/HTTP receiver in this process
(``tests._otlp.SpanCollector``): the router's span is the client span's child,
and the replica's span, exported by the model's own process, is the router's.
"""

from __future__ import annotations

import secrets

import openai
import pytest

from tests.conftest import TEST_API_KEY, RunningGarden

pytestmark = pytest.mark.e2e

MEDICAL = "What is the first-line treatment for type 2 diabetes?"


@pytest.fixture(scope="module")
def client(garden: RunningGarden) -> openai.OpenAI:
    return openai.OpenAI(base_url=garden.endpoint, api_key=TEST_API_KEY, max_retries=0, timeout=120)


def _traceparent() -> tuple[str, str, str]:
    trace_id, span_id = secrets.token_hex(16), secrets.token_hex(8)
    return trace_id, span_id, f"00-{trace_id}-{span_id}-01"


@pytest.mark.parametrize("stream", [False, True])
def test_one_trace_from_the_client_to_the_replica(
    garden: RunningGarden, client: openai.OpenAI, stream: bool
) -> None:
    trace_id, client_span, header = _traceparent()
    reply = client.chat.completions.create(
        model="auto",
        messages=[{"role": "user", "content": MEDICAL}],
        max_tokens=8,
        temperature=0.5,
        stream=stream,
        extra_body={"ignore_eos": True},
        extra_headers={"traceparent": header},
    )
    chunks = list(reply) if stream else [reply]
    spans = garden.spans.of_trace(trace_id, 2)
    by_service = {s["service"]: s for s in spans}
    assert set(by_service) == {"model-garden-router", "model-garden-model"}, spans
    router, replica = by_service["model-garden-router"], by_service["model-garden-model"]
    assert router["parent_span_id"] == client_span
    assert replica["parent_span_id"] == router["span_id"]
    served = router["attributes"]["gen_ai.response.model"]
    assert replica["name"] == f"chat {served}"
    assert replica["attributes"]["http.response.status_code"] == 200
    # The GenAI attributes of the router's span.
    attributes = router["attributes"]
    assert attributes["gen_ai.operation.name"] == "chat"
    assert attributes["gen_ai.request.max_tokens"] == 8
    assert attributes["gen_ai.request.temperature"] == 0.5
    assert attributes["gen_ai.response.id"] == chunks[0].id
    assert attributes["gen_ai.response.finish_reasons"] == ["length"]
    assert attributes["server.port"] == garden.config.router.port
    assert "error.type" not in attributes
    # No prompt text: telemetry.record_content is off.
    assert not any(MEDICAL in str(v) for s in spans for v in s["attributes"].values())


def test_a_failed_request_names_its_error_type(
    garden: RunningGarden, client: openai.OpenAI
) -> None:
    trace_id, _, header = _traceparent()
    with pytest.raises(openai.BadRequestError):
        client.embeddings.create(
            model="generalist", input="hi", extra_headers={"traceparent": header}
        )
    (router,) = garden.spans.of_trace(trace_id, 1)
    assert router["attributes"]["error.type"] == "model_not_supported"
    assert router["attributes"]["http.response.status_code"] == 400
