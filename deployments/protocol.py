"""What a model replica sends back to the router: plain bytes and strings.

The router must not import vLLM (it would cost the ingress ~0.6 GB and 15 s
of start-up), so replicas never return vLLM's pydantic objects. A call to
:meth:`GardenModel.generate <deployments._server.GardenModel.generate>`
yields one :class:`ReplyHead` and then, for streams, SSE text chunks.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

__all__ = ["ENDPOINTS", "ReplyHead", "RequestBody"]

#: OpenAI (and vLLM) endpoints a model replica serves, by the name the router passes.
ENDPOINTS = ("chat", "completions", "responses", "embeddings", "tokenize", "detokenize")


@dataclass(frozen=True, slots=True)
class ReplyHead:
    """The first item of every reply.

    ``status`` is the HTTP status to answer with. ``body`` is the whole JSON
    response (non-stream), the OpenAI error body (status >= 400), or the first
    SSE chunk(s) of a stream (``stream`` true), whose remaining chunks follow
    as ``str`` items. A Responses API stream's events carry their ``event:``
    line, as vLLM writes them.
    """

    status: int
    body: bytes
    stream: bool = False


@dataclass(frozen=True, slots=True)
class RequestBody:
    """An OpenAI request body as the router sends it to a replica.

    Ray Serve LLM's prefix-aware request router (``replica_router:
    prefix_aware``) picks a replica by the text of the first call argument
    that has a ``messages`` or a ``prompt`` attribute, as vLLM's request
    objects have, and divides by that text's length. So this body offers
    only ``prompt``, as one non-empty string: the text of its messages, its
    prompt or its ``input`` (Responses, embeddings), or a single space when
    it has none (detokenize, or a body the replica will refuse).
    """

    json: dict[str, Any]

    @property
    def prompt(self) -> str:
        """The request's text, never empty (see the class)."""
        body = self.json
        for key in ("messages", "prompt", "input"):
            if key in body:
                text = _text(body[key])
                if text:
                    return text
        return " "


def _text(value: Any) -> str:
    """The text in a prompt, a message list or content parts (token ids have none)."""
    if isinstance(value, str):
        return value
    if isinstance(value, list):
        return "".join(_text(item) for item in value)
    if isinstance(value, dict):
        if isinstance(value.get("text"), str):
            return str(value["text"])
        return _text(value.get("content"))
    return ""
