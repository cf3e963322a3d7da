"""Reading a request body within ``router.request_limits``: size, nesting, message count.

The body is read as it arrives and refused (413) as soon as it passes
``max_body_bytes``, before it is parsed, tokenized or held whole; a
``Content-Length`` over the limit is refused before any of it is read. A
body still arriving after ``body_timeout_s`` is refused with 408, so a slow
client cannot hold one of the router's request slots.
Nesting deeper than ``max_json_depth`` and more than ``max_messages`` chat
messages are 400s, never a 500 (Python's JSON parser raises
``RecursionError`` on a few thousand levels).
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import AsyncIterator
from typing import Any

from cluster.config import RequestLimitsSpec
from cluster.exceptions import InvalidRequestError, RequestTimeoutError, RequestTooLargeError

__all__ = ["json_depth", "read_body", "read_json_body"]

#: A Content-Length worth reading (ASCII digits, no more than 19 of them).
_DIGITS = re.compile(r"[0-9]{1,19}")


def _too_large(limit: int) -> RequestTooLargeError:
    return RequestTooLargeError(
        f"request body is larger than {limit} bytes (router.request_limits.max_body_bytes)"
    )


async def read_body(
    chunks: AsyncIterator[bytes],
    content_length: str | None,
    limit: int,
    timeout_s: float | None = None,
) -> bytes:
    """The whole body from ``chunks`` within ``limit`` bytes and ``timeout_s`` seconds.

    Raises :class:`RequestTooLargeError` past the size, and
    :class:`RequestTimeoutError` when the body is still arriving after the time.
    """
    declared = content_length if content_length is not None else ""
    if _DIGITS.fullmatch(declared) and int(declared) > limit:
        raise _too_large(limit)
    parts: list[bytes] = []
    size = 0
    try:
        async with asyncio.timeout(timeout_s):
            async for chunk in chunks:
                size += len(chunk)
                if size > limit:
                    raise _too_large(limit)
                parts.append(chunk)
    except TimeoutError as err:
        raise RequestTimeoutError(
            f"request body still arriving after {timeout_s:g} s "
            "(router.request_limits.body_timeout_s)"
        ) from err
    return b"".join(parts)


def json_depth(value: Any, stop_after: int) -> int:
    """Nesting depth of ``value`` (a scalar is 0), counted without recursion.

    Stops counting once past ``stop_after``, so a deep body costs no more
    than a shallow one.
    """
    deepest = 0
    todo: list[tuple[Any, int]] = [(value, 0)]
    while todo:
        node, depth = todo.pop()
        if isinstance(node, dict):
            children: Any = node.values()
        elif isinstance(node, list):
            children = node
        else:
            continue
        depth += 1
        deepest = max(deepest, depth)
        if deepest > stop_after:
            return deepest
        todo.extend((child, depth) for child in children)
    return deepest


def read_json_body(raw: bytes, limits: RequestLimitsSpec) -> dict[str, Any]:
    """``raw`` parsed as a JSON object within ``limits`` (:class:`InvalidRequestError` if not)."""
    depth_error = InvalidRequestError(
        f"request body nests deeper than {limits.max_json_depth} levels "
        "(router.request_limits.max_json_depth)"
    )
    try:
        body = json.loads(raw)
    except RecursionError as err:
        raise depth_error from err
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise InvalidRequestError(f"request body is not valid JSON: {err}") from err
    if not isinstance(body, dict):
        raise InvalidRequestError(f"request body must be a JSON object, got {type(body).__name__}")
    if json_depth(body, limits.max_json_depth) > limits.max_json_depth:
        raise depth_error
    messages = body.get("messages")
    if isinstance(messages, list) and len(messages) > limits.max_messages:
        raise InvalidRequestError(
            f"messages has {len(messages)} entries, more than {limits.max_messages} "
            "(router.request_limits.max_messages)",
            param="messages",
        )
    return body
