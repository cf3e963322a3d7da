"""What a request needs of the model that serves it, read from its OpenAI body (pure)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from router.policy import Needs

__all__ = ["needs_of"]

#: Bytes of UTF-8 per token at most, for a lower bound on a prompt's tokens
#: without its tokenizer. BPE vocabularies hold a few long tokens (runs of
#: spaces, "=" or "-"), but text averaging more than this per token does
#: not occur, so a prompt that fits is not refused as too long.
BYTES_PER_TOKEN_AT_MOST = 16

_IMAGE_PARTS = frozenset({"image_url", "input_image", "image"})


def _parts(messages: Any) -> list[Mapping[str, Any]]:
    parts: list[Mapping[str, Any]] = []
    if not isinstance(messages, Sequence) or isinstance(messages, str):
        return parts
    for message in messages:
        content = message.get("content") if isinstance(message, Mapping) else None
        if isinstance(content, Sequence) and not isinstance(content, str):
            parts.extend(p for p in content if isinstance(p, Mapping))
    return parts


def _text_bytes(body: Mapping[str, Any]) -> int:
    total = 0
    messages = body.get("messages")
    if isinstance(messages, Sequence) and not isinstance(messages, str):
        for message in messages:
            content = message.get("content") if isinstance(message, Mapping) else None
            if isinstance(content, str):
                total += len(content.encode())
        total += sum(len(str(p.get("text", "")).encode()) for p in _parts(messages))
    given = body.get("input")  # the Responses API: a string, or message items like chat's
    if isinstance(given, str):
        total += len(given.encode())
    elif isinstance(given, Sequence):
        total += _text_bytes({"messages": given})
    prompt = body.get("prompt")
    if isinstance(prompt, str):
        total += len(prompt.encode())
    elif isinstance(prompt, Sequence):
        total += max((len(p.encode()) for p in prompt if isinstance(p, str)), default=0)
    return total


def needs_of(body: Mapping[str, Any]) -> Needs:
    """The :class:`~router.policy.Needs` of a chat, completions or Responses body.

    With ``tools``, ``tool_choice`` absent or ``auto`` lets the model decide
    (vLLM needs auto tool choice and a parser), ``required`` or a named
    function forces a call (vLLM needs the parser), and ``none`` needs nothing.
    """
    tools = body.get("tools")
    choice = body.get("tool_choice", "auto")
    logprobs = body.get("logprobs")
    if isinstance(logprobs, bool):  # chat: logprobs=true, top_logprobs=n
        top = body.get("top_logprobs")
        wanted = int(top) if logprobs and isinstance(top, int) else 0
    else:  # completions: logprobs=n
        wanted = int(logprobs) if isinstance(logprobs, int) else 0
    max_tokens = body.get(
        "max_completion_tokens", body.get("max_tokens", body.get("max_output_tokens"))
    )
    out_tokens = int(max_tokens) if isinstance(max_tokens, int) and max_tokens > 0 else 0
    return Needs(
        tools=bool(tools) and choice == "auto",
        forced_tools=bool(tools) and choice not in ("auto", "none", None),
        # chat's messages, or the Responses API's input items (input_image parts)
        images=any(
            p.get("type") in _IMAGE_PARTS for p in _parts(body.get("messages") or body.get("input"))
        ),
        logprobs=wanted,
        tokens=_text_bytes(body) // BYTES_PER_TOKEN_AT_MOST + out_tokens,
    )
