"""The ingress's OpenAPI document: its real routes, bodies and OpenAI-shaped errors.

The routes read their bodies as raw JSON (validation stays where it is:
size and shape in the router, the parameters in vLLM's own request models
at the replica), so FastAPI alone would document no bodies. These pydantic
models describe what a client may send and get back; they validate nothing.
Bodies allow more keys than listed, as vLLM does (its sampling extras).
"""

from __future__ import annotations

from typing import Any, Literal

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from pydantic import BaseModel, ConfigDict, Field

__all__ = ["openapi_document"]


class _Open(BaseModel):
    model_config = ConfigDict(extra="allow")


class ChatMessage(_Open):
    """One message of a conversation."""

    role: Literal["system", "developer", "user", "assistant", "tool"]
    content: str | list[dict[str, Any]] | None = Field(
        None, description="Text, or content parts (text, image_url, ...)."
    )
    name: str | None = None


class _Sampling(_Open):
    model: str = Field(description="A served model, `<model>:<adapter>`, or a virtual model.")
    max_tokens: int | None = Field(None, ge=1)
    temperature: float | None = Field(None, ge=0, le=2)
    top_p: float | None = Field(None, gt=0, le=1)
    n: int | None = Field(None, ge=1)
    stop: str | list[str] | None = None
    stream: bool = False
    seed: int | None = None
    user: str | None = Field(None, description="Names a conversation for sticky routing.")


class ChatCompletionBody(_Sampling):
    """``POST /v1/chat/completions``."""

    messages: list[ChatMessage] = Field(min_length=1)
    tools: list[dict[str, Any]] | None = None
    tool_choice: str | dict[str, Any] | None = None
    logprobs: bool | None = None
    top_logprobs: int | None = Field(None, ge=0)


class CompletionBody(_Sampling):
    """``POST /v1/completions``."""

    prompt: str | list[str] | list[int] = Field(description="Text, texts, or token ids.")


class ResponsesBody(_Open):
    """``POST /v1/responses`` (vLLM's Responses API)."""

    model: str = Field(description="A served model, `<model>:<adapter>`, or a virtual model.")
    input: str | list[dict[str, Any]] = Field(description="A prompt, or message items.")
    instructions: str | None = None
    max_output_tokens: int | None = Field(None, ge=1)
    temperature: float | None = Field(None, ge=0, le=2)
    top_p: float | None = Field(None, gt=0, le=1)
    tools: list[dict[str, Any]] | None = None
    tool_choice: str | dict[str, Any] | None = None
    stream: bool = False
    user: str | None = Field(None, description="Names a conversation for sticky routing.")


class EmbeddingsBody(_Open):
    """``POST /v1/embeddings``, from a model with ``role: embedder``."""

    model: str
    input: str | list[str] | list[int] | list[list[int]] = Field(
        description="Text, texts, or token ids."
    )
    encoding_format: Literal["float", "base64"] | None = None
    dimensions: int | None = Field(None, ge=1)


class TokenizeBody(_Open):
    """``POST /tokenize`` (vLLM's): a ``prompt``, or chat ``messages``."""

    model: str = Field(description="A served model or `<model>:<adapter>` (not virtual).")
    prompt: str | None = None
    messages: list[ChatMessage] | None = None
    add_special_tokens: bool | None = None


class TokenizeReply(_Open):
    """vLLM's tokenize answer."""

    count: int
    max_model_len: int
    tokens: list[int]
    token_strs: list[str] | None = None


class DetokenizeBody(_Open):
    """``POST /detokenize`` (vLLM's)."""

    model: str = Field(description="A served model or `<model>:<adapter>` (not virtual).")
    tokens: list[int]


class DetokenizeReply(_Open):
    """vLLM's detokenize answer."""

    prompt: str


class ErrorDetail(BaseModel):
    """OpenAI's error object."""

    message: str
    type: str
    param: str | None
    code: str | None


class ErrorBody(BaseModel):
    """Every error answer: ``{"error": {message, type, param, code}}``."""

    error: ErrorDetail


class ModelCard(_Open):
    """One entry of ``/v1/models``; the garden adds ``role`` and, for virtual models,
    ``description``."""

    id: str
    object: Literal["model"]
    owned_by: str


class ModelList(BaseModel):
    """``GET /v1/models``."""

    object: Literal["list"]
    data: list[ModelCard]


_REF = "#/components/schemas/{model}"

#: Path -> (method, request model or None, 200 model or None (a completion or an SSE stream)).
_ROUTES: dict[str, tuple[str, type[BaseModel] | None, type[BaseModel] | None]] = {
    "/v1/models": ("get", None, ModelList),
    "/v1/models/{model_id}": ("get", None, ModelCard),
    "/v1/chat/completions": ("post", ChatCompletionBody, None),
    "/v1/completions": ("post", CompletionBody, None),
    "/v1/responses": ("post", ResponsesBody, None),
    "/v1/embeddings": ("post", EmbeddingsBody, None),
    "/tokenize": ("post", TokenizeBody, TokenizeReply),
    "/detokenize": ("post", DetokenizeBody, DetokenizeReply),
}

_ERRORS = {
    "400": "Malformed body or parameter, nested too deep, too many messages, or a model "
    "that does not serve the route (code model_not_supported)",
    "401": "No known API key (with router.auth)",
    "404": "Unknown model",
    "408": "The body did not arrive within router.request_limits.body_timeout_s",
    "413": "The body is over router.request_limits.max_body_bytes",
    "429": "The model's queue is full (Retry-After)",
    "503": "No healthy replica (Retry-After)",
}


def _content(model: type[BaseModel]) -> dict[str, Any]:
    return {"application/json": {"schema": {"$ref": _REF.format(model=model.__name__)}}}


def openapi_document(app: FastAPI, version: str) -> dict[str, Any]:
    """The OpenAPI 3.1 document of ``app``'s OpenAI routes, with bodies and errors."""
    routes = [r for r in app.routes if getattr(r, "path", None) in _ROUTES]
    doc = get_openapi(title="Model Garden", version=version, routes=routes)
    schemas: dict[str, Any] = {}
    models: list[type[BaseModel]] = [
        ErrorBody,
        ChatCompletionBody,
        CompletionBody,
        ResponsesBody,
        EmbeddingsBody,
        TokenizeBody,
        TokenizeReply,
        DetokenizeBody,
        DetokenizeReply,
        ModelList,
        ModelCard,
    ]
    for model in models:
        schema = model.model_json_schema(ref_template=_REF)
        schemas.update(schema.pop("$defs", {}))
        schemas[model.__name__] = schema
    for path, (method, body, ok) in _ROUTES.items():
        operation = doc["paths"][path][method]
        operation.pop("requestBody", None)
        if body is not None:
            operation["requestBody"] = {"required": True, "content": _content(body)}
        success: dict[str, Any] = {"description": "OK"}
        if ok is not None:
            success["content"] = _content(ok)
        else:
            success["content"] = {
                "application/json": {"schema": {"type": "object"}},
                "text/event-stream": {"schema": {"type": "string"}},
            }
        errors = {code: {"description": why, "content": _content(ErrorBody)}
                  for code, why in _ERRORS.items()}  # fmt: skip
        operation["responses"] = {"200": success, **errors}
    doc.setdefault("components", {})["schemas"] = schemas
    return doc
