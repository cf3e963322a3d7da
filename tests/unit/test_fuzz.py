"""The ingress's OpenAPI document, and schemathesis fuzzing the router's app against it.

The router's real app runs in-process (``tests._ingress``); schemathesis
draws bodies, paths and headers from ``/openapi.json``, both valid ones and
ones that break the schema, and every answer must be a non-5xx, with each
error in OpenAI's shape.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from starlette.testclient import TestClient

from tests._ingress import FakeHandle, lexical_garden, serve_router

pytestmark = pytest.mark.unit

#: Examples per operation and generation mode: enough to hit the odd types
#: and shapes, small enough for the unit tier.
EXAMPLES = 40


@pytest.fixture
def served(
    data_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[TestClient, dict[str, FakeHandle]]]:
    with serve_router(lexical_garden(data_dir), monkeypatch) as app:
        yield app


def test_the_openapi_document_describes_the_routes(
    served: tuple[TestClient, dict[str, FakeHandle]],
) -> None:
    http, _ = served
    doc = http.get("/openapi.json").json()
    assert doc["openapi"].startswith("3.")
    assert set(doc["paths"]) == {
        "/v1/models",
        "/v1/models/{model_id}",
        "/v1/chat/completions",
        "/v1/completions",
        "/v1/responses",
        "/v1/embeddings",
        "/tokenize",
        "/detokenize",
    }
    chat = doc["paths"]["/v1/chat/completions"]["post"]
    ref = chat["requestBody"]["content"]["application/json"]["schema"]["$ref"]
    body = doc["components"]["schemas"][ref.rsplit("/", 1)[-1]]
    assert {"model", "messages"} <= set(body["required"])
    assert {"400", "413", "429", "503"} <= set(chat["responses"])


def _error_shaped(response: Any) -> None:
    """A 4xx carries OpenAI's error body."""
    if response.status_code < 400:
        return
    body = json.loads(response.content)
    assert set(body) == {"error"}, body
    assert set(body["error"]) == {"message", "type", "param", "code"}, body
    assert isinstance(body["error"]["message"], str)


def test_fuzzing_finds_no_server_error(served: tuple[TestClient, dict[str, FakeHandle]]) -> None:
    import schemathesis
    from hypothesis import HealthCheck, given, settings
    from hypothesis.errors import Unsatisfiable
    from schemathesis import GenerationMode

    from router.ingress import app

    schema = schemathesis.openapi.from_asgi("/openapi.json", app)
    failures: list[str] = []
    tried = 0
    for result in schema.get_all_operations():
        operation = result.ok()
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):

            @settings(
                max_examples=EXAMPLES,
                deadline=None,
                database=None,
                suppress_health_check=list(HealthCheck),
            )
            @given(case=operation.as_strategy(generation_mode=mode))
            def run(case: Any) -> None:
                nonlocal tried
                tried += 1
                response = case.call()
                if response.status_code >= 500:
                    failures.append(f"{case.method} {case.formatted_path} {case.body!r:.300}")
                    return
                _error_shaped(response)

            try:
                run()
            except Unsatisfiable:
                # GET /v1/models has neither parameters nor a body to break.
                assert mode is GenerationMode.NEGATIVE, operation.label
    assert tried >= 8 * EXAMPLES
    assert failures == [], f"{len(failures)} server errors, e.g. {failures[:3]}"
