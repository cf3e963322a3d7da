"""``replica_router: prefix_aware`` (issue 17, item 5): Ray Serve LLM's router picks the replicas.

The test garden's cold model (``PREFIX_AWARE_MODEL``) runs with it: Serve
reports the class as the deployment's request router, and a multi-turn
conversation through the official client is served by it, every turn
(each call carries a ``RequestBody``, whose text the router reads).
"""

from __future__ import annotations

import openai
import pytest

from cluster.ray_internals import serve_details
from deployments.model import PREFIX_AWARE_ROUTER
from tests.conftest import PREFIX_AWARE_MODEL, TEST_API_KEY, RunningGarden

pytestmark = [pytest.mark.e2e, pytest.mark.usefixtures("cold_model_up")]


def test_the_prefix_aware_router_is_deployed_and_serves_a_conversation(
    garden: RunningGarden,
) -> None:
    details = serve_details()
    assert details is not None
    deployment = details["applications"][garden.config.name]["deployments"][PREFIX_AWARE_MODEL]
    router = deployment["deployment_config"]["request_router_config"]
    assert router["request_router_class"] == PREFIX_AWARE_ROUTER, router

    client = openai.OpenAI(base_url=garden.endpoint, api_key=TEST_API_KEY, max_retries=0)
    messages: list[dict[str, str]] = [
        {"role": "system", "content": "You answer questions about contract law briefly."}
    ]
    for question in (
        "Is a verbal agreement to sell a house enforceable?",
        "And if both parties signed an email saying so?",
        "What if one of them was a minor?",
    ):
        messages.append({"role": "user", "content": question})
        reply = client.chat.completions.create(
            model=PREFIX_AWARE_MODEL,
            messages=messages,
            max_tokens=8,  # type: ignore[arg-type]
        )
        assert reply.model == PREFIX_AWARE_MODEL and reply.choices[0].message.content is not None
        messages.append({"role": "assistant", "content": reply.choices[0].message.content})
