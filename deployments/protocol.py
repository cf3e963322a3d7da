"""What a model replica sends back to the router: plain bytes and strings.

The router must not import vLLM (it would cost the ingress ~0.6 GB and 15 s
of start-up), so replicas never return vLLM's pydantic objects. A call to
:meth:`GardenModel.generate <deployments._server.GardenModel.generate>`
yields one :class:`ReplyHead` and then, for streams, SSE text chunks.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["ENDPOINTS", "ReplyHead"]

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
