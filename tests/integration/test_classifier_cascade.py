"""The full cascade (lexical + MiniLM semantic stage) and the routing decision."""

from __future__ import annotations

import pytest

from cluster.config import load_config
from router.policy import ModelState, Reason
from router.routing import Router

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def router() -> Router:
    return Router(load_config(None))


@pytest.mark.parametrize(
    ("text", "model"),
    [
        (
            "A 54-year-old man has crushing chest pain radiating to his left arm. Next step?",
            "medicine",
        ),
        ("Can the police search my car without a warrant during a traffic stop?", "law"),
        ("Explain how to compute the weighted average cost of capital.", "finance"),
        ("Write a Python function that reverses a linked list.", "code"),
        ("Who painted the ceiling of the Sistine Chapel?", "generalist"),
    ],
)
def test_obvious_prompts_reach_the_right_model(router: Router, text: str, model: str) -> None:
    ready = {
        m: ModelState(healthy=True, outstanding=0, queue_limit=4)
        for m in ("medicine", "law", "finance", "code", "generalist")
    }
    features, decision = router.route(text, ready)
    assert decision.model == model, features.scores
    assert decision.reason in (Reason.SPECIALIST, Reason.GENERAL)
