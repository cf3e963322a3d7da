"""OpenAI's context-length rule for vLLM: refuse, do not silently shorten.

vLLM clamps ``max_tokens`` to what is left of the context window after the
prompt. OpenAI (and clients that budget tokens) expect a 400 that names the
window and the request instead, so the garden installs a strict variant of
vLLM's ``get_max_tokens`` in the serving modules of a model replica.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

from deployments._internals import VLLMValidationError, replace_in_serving

__all__ = ["install_strict_max_tokens"]


def _strict(get_max_tokens: Callable[..., int]) -> Callable[..., int]:
    @functools.wraps(get_max_tokens)
    def strict(
        max_model_len: int, max_tokens: int | None, input_length: int, *args: Any, **kwargs: Any
    ) -> int:
        if max_tokens is not None and input_length + max_tokens > max_model_len:
            raise VLLMValidationError(
                f"This model's maximum context length is {max_model_len} tokens. However, "
                f"you requested {input_length + max_tokens} tokens ({input_length} in the "
                f"prompt, {max_tokens} for the completion via max_tokens={max_tokens}). "
                "Please reduce the prompt or max_tokens.",
                parameter="max_tokens",
                value=max_tokens,
            )
        return get_max_tokens(max_model_len, max_tokens, input_length, *args, **kwargs)

    strict.__garden_wrapped__ = True  # type: ignore[attr-defined]
    return strict


def install_strict_max_tokens() -> None:
    """Make chat and completions refuse prompt + max_tokens over the window (idempotent)."""
    replace_in_serving("get_max_tokens", _strict)
