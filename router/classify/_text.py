"""What the classifier reads of a request: text only, bounded in size.

Only text parts count (images and tool payloads say little about the domain),
only the last user turn plus a short tail of earlier context, and long text
keeps its head and its tail, so a 100k-character prompt costs what a short
one does.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

__all__ = ["MAX_CHARS", "clip", "request_text"]

#: Characters of the request the classifier reads at most.
MAX_CHARS = 2000
_CONTEXT_CHARS = 400
_TEXT_PARTS = frozenset({"text", "input_text"})


def clip(text: str, limit: int = MAX_CHARS) -> str:
    """``text`` cut to ``limit`` characters, keeping its head and tail."""
    if len(text) <= limit:
        return text
    half = limit // 2
    return f"{text[:half]} … {text[-half:]}"


def _content_text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, Sequence):
        parts = [
            str(p.get("text", ""))
            for p in content
            # chat's "text" parts; the Responses API's "input_text"
            if isinstance(p, Mapping) and p.get("type") in _TEXT_PARTS
        ]
        return " ".join(parts)
    return ""


def request_text(body: Mapping[str, Any]) -> str:
    """The text of a chat, completions or Responses body that decides its domain.

    A Responses ``input`` is a prompt (a string) or a conversation (a list
    of message items, read like chat ``messages``).
    """
    messages = body.get("messages")
    if messages is None and "input" in body:
        given = body["input"]
        if isinstance(given, str):
            return clip(given)
        messages = given
    if isinstance(messages, Sequence) and not isinstance(messages, str):
        turns = [m for m in messages if isinstance(m, Mapping)]
        last_user = next(
            (i for i in range(len(turns) - 1, -1, -1) if turns[i].get("role") == "user"), None
        )
        if last_user is None:
            return ""
        question = clip(_content_text(turns[last_user].get("content")))
        before = " ".join(_content_text(t.get("content")) for t in turns[:last_user][-2:])
        context = before[-_CONTEXT_CHARS:] if before else ""
        return f"{context}\n{question}".strip()
    prompt = body.get("prompt")
    if isinstance(prompt, str):
        return clip(prompt)
    if isinstance(prompt, Sequence) and prompt and isinstance(prompt[-1], str):
        return clip(prompt[-1])
    return ""
