"""The body the router sends a replica, as Ray Serve LLM's prefix-aware router reads it.

The router is Ray's own class (``ray.serve.llm.request_router``), built
without a cluster: if an upgrade changes how it finds a request's text, this
fails here, not as replicas chosen at random.
"""

from __future__ import annotations

import pickle
from types import SimpleNamespace
from typing import Any

import pytest

from cluster.config import load_config
from deployments.model import PREFIX_AWARE_ROUTER, deployment_options
from deployments.protocol import RequestBody

pytestmark = pytest.mark.unit


def _text_ray_reads(body: dict[str, Any]) -> str:
    from ray.serve.llm.request_router import PrefixCacheAffinityRouter

    router = object.__new__(PrefixCacheAffinityRouter)  # its text extraction needs no state
    pending = SimpleNamespace(args=("chat", RequestBody(body), {"traceparent": "00-x"}))
    return str(router._extract_text_from_request(pending))


def test_ray_serve_llms_prefix_router_reads_the_prompt_of_every_endpoint() -> None:
    parts = [{"type": "text", "text": "Hi"}]
    chat = {
        "messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": parts}]
    }
    assert _text_ray_reads(chat) == "Be brief.Hi"
    assert _text_ray_reads({"prompt": "Once upon"}) == "Once upon"
    assert _text_ray_reads({"input": "Embed me"}) == "Embed me"  # embeddings, Responses
    # No text (detokenize, token ids, a body the replica refuses): one space, as Ray's
    # router divides by the text's length.
    for textless in ({"tokens": [1, 2, 3]}, {"prompt": [1, 2]}, {"model": "law"}, {"messages": []}):
        assert _text_ray_reads(textless) == " "
    assert _text_ray_reads({"messages": "not a list"}) == "not a list"


def test_the_body_crosses_to_a_replica_whole() -> None:
    body = RequestBody({"model": "law", "messages": [{"role": "user", "content": "Hi"}]})
    assert pickle.loads(pickle.dumps(body)) == body


def test_prefix_aware_is_a_per_model_request_router() -> None:
    garden = load_config(None)
    data = garden.model_dump(mode="json")
    data["models"][0]["replica_router"] = "prefix_aware"
    changed = type(garden).model_validate(data)
    first, second = changed.models[0], changed.models[1]
    router = deployment_options(changed, first)["request_router_config"]
    assert router == {"request_router_class": PREFIX_AWARE_ROUTER}
    assert "request_router_config" not in deployment_options(changed, second)


def test_an_unknown_replica_router_names_the_field_and_the_value() -> None:
    from pydantic import ValidationError

    data = load_config(None).model_dump(mode="json")
    data["models"][0]["replica_router"] = "round_robin"
    with pytest.raises(ValidationError, match="replica_router") as info:
        type(load_config(None)).model_validate(data)
    assert "round_robin" in str(info.value)
