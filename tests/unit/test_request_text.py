"""What the classifier reads: text parts only, the last user turn, bounded length."""

from __future__ import annotations

import pytest

from router.classify import MAX_CHARS, clip, request_text

pytestmark = pytest.mark.unit


def test_last_user_turn_with_a_short_context_tail() -> None:
    body = {
        "messages": [
            {"role": "system", "content": "You are helpful."},
            {"role": "user", "content": "Tell me about contracts."},
            {"role": "assistant", "content": "A contract needs offer and acceptance."},
            {"role": "user", "content": "And consideration?"},
        ]
    }
    text = request_text(body)
    assert text.endswith("And consideration?")
    assert "offer and acceptance" in text


def test_only_text_parts_are_read() -> None:
    body = {
        "messages": [
            {
                "role": "user",
                "content": [
                    {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}},
                    {"type": "text", "text": "What rash is this?"},
                ],
            }
        ]
    }
    assert request_text(body) == "What rash is this?"


def test_huge_prompts_are_clipped_keeping_head_and_tail() -> None:
    prompt = "HEAD " + "filler " * 20_000 + " TAIL"
    text = request_text({"prompt": prompt})
    assert len(text) <= MAX_CHARS + 3
    assert text.startswith("HEAD") and text.endswith("TAIL")
    assert clip("short") == "short"


def test_no_user_turn_reads_nothing() -> None:
    assert request_text({"messages": [{"role": "system", "content": "x"}]}) == ""
    assert request_text({"prompt": ["a", "last prompt"]}) == "last prompt"
