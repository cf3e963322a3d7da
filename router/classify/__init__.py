"""Domain classification of requests (the cascade itself is still to come)."""

from router.classify._text import MAX_CHARS, clip, request_text

__all__ = ["MAX_CHARS", "clip", "request_text"]
