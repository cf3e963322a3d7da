"""Capability-aware routing: what a request needs, what each model has, and where it goes."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest

from cluster.config import ModelSpec
from cluster.exceptions import UnsupportedRequestError
from router._needs import needs_of
from router.policy import (
    Capabilities,
    Features,
    ModelState,
    Needs,
    PolicyConfig,
    Reason,
    decide,
)
from router.virtual import capabilities_of

pytestmark = pytest.mark.unit

TOOLS = [{"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}]
READY = {
    name: ModelState(healthy=True, outstanding=0, queue_limit=4)
    for name in ("medicine", "code", "generalist")
}
PLAIN = Capabilities(max_model_len=2048)
POLICY = PolicyConfig(
    generalist="generalist",
    owners={"medicine": "medicine", "code": "code"},
    capabilities={"medicine": PLAIN, "code": PLAIN, "generalist": PLAIN},
)


def _with_tools(*models: str) -> PolicyConfig:
    caps = {m: replace(c, tools=m in models) for m, c in POLICY.capabilities.items()}
    return replace(POLICY, capabilities=caps)


# --- needs_of ----------------------------------------------------------------


def test_tools_are_needed_only_when_the_model_must_choose_to_call_them() -> None:
    chat = {"messages": [{"role": "user", "content": "hi"}], "tools": TOOLS}
    assert needs_of(chat).tools
    assert needs_of({**chat, "tool_choice": "auto"}).tools
    for choice in ("none", "required", {"type": "function", "function": {"name": "f"}}):
        assert not needs_of({**chat, "tool_choice": choice}).tools
    # vLLM 0.32 parses a forced call (required, or a named function) with the parser too.
    for choice in ("required", {"type": "function", "function": {"name": "f"}}):
        assert needs_of({**chat, "tool_choice": choice}).forced_tools
    assert not needs_of({**chat, "tool_choice": "none"}).forced_tools
    assert not needs_of({**chat, "tools": []}).tools
    assert not needs_of({**chat, "tools": []}).forced_tools


def test_image_parts_logprobs_and_tokens() -> None:
    parts = [
        {"type": "text", "text": "what is in this picture?"},
        {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}},
    ]
    needs = needs_of({"messages": [{"role": "user", "content": parts}]})
    assert needs.images and not needs.tools
    assert not needs_of({"messages": [{"role": "user", "content": parts[:1]}]}).images
    assert needs_of({"messages": [], "logprobs": True, "top_logprobs": 5}).logprobs == 5
    assert needs_of({"messages": [], "logprobs": False, "top_logprobs": 5}).logprobs == 0
    assert needs_of({"prompt": "x", "logprobs": 3}).logprobs == 3
    # A lower bound: 16 bytes per token at most, plus the tokens asked for.
    long = needs_of({"prompt": "a" * 160_000, "max_tokens": 100})
    assert long.tokens == 10_000 + 100
    chat = needs_of({"messages": [{"role": "user", "content": "b" * 1600}], "max_tokens": 7})
    assert chat.tokens == 100 + 7
    assert needs_of({"prompt": "x", "max_tokens": 5, "max_completion_tokens": 9}).tokens == 9


# --- capabilities_of ---------------------------------------------------------


def _spec(**engine: Any) -> ModelSpec:
    return ModelSpec(name="m", role="generalist", source="/models/m", engine=engine)


def test_capabilities_come_from_engine_args_and_the_checkpoint() -> None:
    text_checkpoint = {"max_position_embeddings": 4096}
    caps = capabilities_of(_spec(), text_checkpoint)
    assert caps == Capabilities(tools=False, images=False, max_logprobs=20, max_model_len=4096)
    tools = _spec(enable_auto_tool_choice=True, tool_call_parser="hermes", max_model_len=1024)
    assert capabilities_of(tools, text_checkpoint).tools
    assert capabilities_of(tools, text_checkpoint).max_model_len == 1024
    assert not capabilities_of(_spec(enable_auto_tool_choice=True), None).tools  # no parser
    parser_only = capabilities_of(_spec(tool_call_parser="pythonic"), None)
    assert parser_only.tool_parser and not parser_only.tools
    assert parser_only.lacks(Needs(forced_tools=True)) == []
    assert parser_only.lacks(Needs(tools=True)) == ["tools"]
    assert PLAIN.lacks(Needs(forced_tools=True)) == ["tools"]
    assert capabilities_of(_spec(), {"vision_config": {}}).images
    assert not capabilities_of(
        _spec(limit_mm_per_prompt={"image": 0}), {"vision_config": {}}
    ).images
    assert capabilities_of(_spec(max_logprobs=50), None).max_logprobs == 50
    # A hub id's checkpoint is not readable here: the engine decides.
    assert capabilities_of(_spec(), None) == Capabilities(images=True, max_model_len=None)
    # vLLM's -1: no cap on logprobs, a derived context; rope scaling stretches the context.
    unbounded = capabilities_of(_spec(max_logprobs=-1, max_model_len=-1), text_checkpoint)
    assert unbounded.max_model_len is None and not unbounded.lacks(Needs(logprobs=500))
    scaled = {"max_position_embeddings": 32768, "rope_scaling": {"type": "yarn", "factor": 4}}
    assert capabilities_of(_spec(), scaled).max_model_len is None
    counted = _spec(limit_mm_per_prompt={"image": {"count": 2, "width": 512}})
    assert capabilities_of(counted, {"vision_config": {}}).images


def test_lacks_names_each_missing_feature() -> None:
    needs = Needs(tools=True, images=True, logprobs=21, tokens=5000)
    assert PLAIN.lacks(needs) == ["tools", "images", "logprobs", "context"]
    assert Capabilities(tools=True, images=True, max_logprobs=21).lacks(needs) == []


# --- decide --------------------------------------------------------------------


def test_a_specialist_without_tools_is_passed_over_for_a_generalist_with_them() -> None:
    d = decide(Features("medicine", 0.99), READY, _with_tools("generalist"), Needs(tools=True))
    assert (d.model, d.reason, d.fallback_from) == ("generalist", Reason.UNSUPPORTED, "medicine")
    plain = decide(Features("medicine", 0.99), READY, _with_tools("generalist"))
    assert plain.reason is Reason.SPECIALIST


def test_a_capable_specialist_that_is_down_comes_after_one_that_can_take_it() -> None:
    policy = _with_tools("code", "medicine")
    scores = {"medicine": 0.6, "code": 0.3, "general": 0.1}
    down = {**READY, "medicine": ModelState(healthy=False, running=0)}
    d = decide(Features("general", 0.9, scores), down, policy, Needs(tools=True))
    assert d.model == "code"
    assert decide(Features("general", 0.9, scores), READY, policy, Needs(tools=True)).model == (
        "medicine"
    )


def test_without_a_capable_generalist_the_best_capable_specialist_serves() -> None:
    policy = _with_tools("code")
    scores = {"medicine": 0.5, "code": 0.3, "general": 0.2}
    d = decide(Features("medicine", 0.5, scores), READY, policy, Needs(tools=True))
    assert (d.model, d.reason, d.fallback_from) == ("code", Reason.UNSUPPORTED, "medicine")
    general = decide(Features("general", 0.9, scores), READY, policy, Needs(tools=True))
    assert (general.model, general.fallback_from) == ("code", "generalist")


def test_no_spill_moves_a_request_to_a_generalist_that_cannot_serve_it() -> None:
    policy = _with_tools("code")
    busy = {**READY, "code": ModelState(healthy=True, outstanding=4, queue_limit=4)}
    d = decide(Features("code", 0.99), busy, policy, Needs(tools=True))
    assert (d.model, d.reason) == ("code", Reason.SPECIALIST)
    down = {**READY, "code": ModelState(healthy=False, running=0)}
    assert decide(Features("code", 0.99), down, policy, Needs(tools=True)).model == "code"
    # A request that needs nothing still spills as before.
    assert decide(Features("code", 0.99), busy, policy).reason is Reason.OVERLOADED


def test_a_request_no_model_can_serve_is_a_clear_400() -> None:
    with pytest.raises(UnsupportedRequestError) as info:
        decide(Features("code", 0.99), READY, POLICY, Needs(tools=True, tokens=9000))
    err = info.value
    assert err.status_code == 400 and err.code == "unsupported_feature"
    assert err.param == "messages"  # the prompt is too long for every model
    assert "code lacks tools, context" in err.message
    assert "generalist lacks tools, context" in err.message
