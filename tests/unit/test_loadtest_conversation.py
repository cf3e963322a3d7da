"""A load-test user's multi-turn chat (loadtest.prompts.Conversation)."""

from __future__ import annotations

import random

import pytest

from loadtest.prompts import PROMPTS, Conversation, PromptMix

pytestmark = pytest.mark.unit


def test_turns_carry_the_earlier_turns_and_answers_then_restart() -> None:
    chat = Conversation(PromptMix.parse(""), turns=2)
    rng = random.Random(0)
    domain, first = chat.ask(rng)
    assert [m["role"] for m in first] == ["user"]
    chat.answered("an answer")
    again, second = chat.ask(rng)
    assert again == domain and second[:2] == [*first, {"role": "assistant", "content": "an answer"}]
    assert second[2]["role"] == "user" and second[2]["content"] in PROMPTS[domain]
    chat.answered("another")
    _, third = chat.ask(rng)  # past 2 turns: a new chat
    assert len(third) == 1 and chat.turn == 1


def test_a_failed_turn_starts_a_new_chat() -> None:
    chat = Conversation(PromptMix.parse("law=1"), turns=5)
    rng = random.Random(1)
    chat.ask(rng)
    chat.failed()
    _, messages = chat.ask(rng)
    assert len(messages) == 1 and chat.turn == 1


def test_single_turn_is_a_new_chat_every_time() -> None:
    chat = Conversation(PromptMix.parse(""), turns=1)
    rng = random.Random(2)
    for _ in range(3):
        _, messages = chat.ask(rng)
        chat.answered("x")
        assert len(messages) == 1


def test_turns_below_one_is_an_error() -> None:
    with pytest.raises(ValueError, match="turns must be at least 1, got 0"):
        Conversation(PromptMix.parse(""), turns=0)
