"""Names the router's explanations use: response headers, span attributes, metrics.

One module, so that the headers, the OpenTelemetry span and the Prometheus
series of a request can only ever say the same thing under the same names.
Span attributes follow the OpenTelemetry GenAI semantic conventions where a
name exists there (``gen_ai.*``); the routing facts have ``garden.route.*``.
"""

from __future__ import annotations

from typing import Final

__all__ = [
    "ATTR_CONFIDENCE",
    "ATTR_COOLDOWN",
    "ATTR_DOMAIN",
    "ATTR_ERROR_TYPE",
    "ATTR_FALLBACK_FROM",
    "ATTR_FINISH_REASONS",
    "ATTR_HTTP_STATUS",
    "ATTR_INPUT_MESSAGES",
    "ATTR_OPERATION",
    "ATTR_OUTPUT_MESSAGES",
    "ATTR_PROVIDER",
    "ATTR_REASON",
    "ATTR_REQUEST_ID",
    "ATTR_REQUEST_MODEL",
    "ATTR_RESPONSE_ID",
    "ATTR_RESPONSE_MODEL",
    "ATTR_RESUMED",
    "ATTR_RESUMED_FROM",
    "ATTR_SERVER_ADDRESS",
    "ATTR_SERVER_PORT",
    "ATTR_SESSION_REASON",
    "ATTR_STAGE",
    "ATTR_STREAM",
    "ATTR_USAGE_INPUT_TOKENS",
    "ATTR_USAGE_OUTPUT_TOKENS",
    "HEADER_CONFIDENCE",
    "HEADER_DOMAIN",
    "HEADER_FALLBACK_FROM",
    "HEADER_MODEL",
    "HEADER_PREFIX",
    "HEADER_REASON",
    "METRIC_DECISION_SECONDS",
    "METRIC_GENAI_REQUEST_DURATION",
    "METRIC_GENAI_TIME_TO_FIRST_TOKEN",
    "METRIC_GENAI_TOKEN_USAGE",
    "METRIC_KEY_LIMITED",
    "METRIC_KEY_REQUESTS",
    "METRIC_KEY_SPEND",
    "METRIC_KEY_TOKENS",
    "METRIC_RESUMED",
    "METRIC_ROUTE",
    "MODEL_TRACER_NAME",
    "OPERATIONS",
    "PROVIDER",
    "REQUEST_PARAMETERS",
    "TAG_DOMAIN",
    "TAG_ERROR_TYPE",
    "TAG_FROM",
    "TAG_GENAI_OPERATION",
    "TAG_GENAI_REQUEST_MODEL",
    "TAG_GENAI_RESPONSE_MODEL",
    "TAG_GENAI_TOKEN_TYPE",
    "TAG_KEY",
    "TAG_LIMIT",
    "TAG_MODEL",
    "TAG_REASON",
    "TAG_TOKEN_TYPE",
    "TRACER_NAME",
]

# -- response headers (every response to a virtual model) ---------------------
HEADER_PREFIX: Final = "x-garden-"
HEADER_MODEL: Final = "x-garden-model"
HEADER_DOMAIN: Final = "x-garden-domain"
HEADER_CONFIDENCE: Final = "x-garden-confidence"
HEADER_REASON: Final = "x-garden-reason"
HEADER_FALLBACK_FROM: Final = "x-garden-fallback-from"

# -- span attributes ------------------------------------------------------------
TRACER_NAME: Final = "model_garden.router"
ATTR_OPERATION: Final = "gen_ai.operation.name"
ATTR_PROVIDER: Final = "gen_ai.provider.name"
ATTR_REQUEST_MODEL: Final = "gen_ai.request.model"
ATTR_RESPONSE_MODEL: Final = "gen_ai.response.model"
ATTR_USAGE_INPUT_TOKENS: Final = "gen_ai.usage.input_tokens"
ATTR_USAGE_OUTPUT_TOKENS: Final = "gen_ai.usage.output_tokens"
ATTR_DOMAIN: Final = "garden.route.domain"
ATTR_CONFIDENCE: Final = "garden.route.confidence"
ATTR_REASON: Final = "garden.route.reason"
ATTR_FALLBACK_FROM: Final = "garden.route.fallback_from"
ATTR_STAGE: Final = "garden.route.stage"
#: On a ``session`` decision: the reason of the turn that chose the conversation's domain.
ATTR_SESSION_REASON: Final = "garden.route.session_reason"
#: On an ``unhealthy`` decision: true when the specialist was in a cooldown.
ATTR_COOLDOWN: Final = "garden.route.cooldown"
#: A stream whose model failed mid-stream and that the generalist continued.
ATTR_RESUMED: Final = "garden.route.resumed"
ATTR_RESUMED_FROM: Final = "garden.route.resumed_from"
ATTR_STREAM: Final = "garden.request.stream"
ATTR_REQUEST_ID: Final = "garden.request.id"
ATTR_HTTP_STATUS: Final = "http.response.status_code"
ATTR_ERROR_TYPE: Final = "error.type"
ATTR_RESPONSE_ID: Final = "gen_ai.response.id"
ATTR_FINISH_REASONS: Final = "gen_ai.response.finish_reasons"
ATTR_SERVER_ADDRESS: Final = "server.address"
ATTR_SERVER_PORT: Final = "server.port"
#: Prompt and response text: recorded only with ``telemetry.record_content``,
#: as the GenAI conventions advise (they may hold personal data).
ATTR_INPUT_MESSAGES: Final = "gen_ai.input.messages"
ATTR_OUTPUT_MESSAGES: Final = "gen_ai.output.messages"
#: The model replica's span, a child of the router's, around the engine call.
MODEL_TRACER_NAME: Final = "model_garden.model"

#: OpenAI body key -> the GenAI ``gen_ai.request.*`` attribute it is recorded as.
REQUEST_PARAMETERS: Final = {
    "max_tokens": "gen_ai.request.max_tokens",
    "max_completion_tokens": "gen_ai.request.max_tokens",
    "max_output_tokens": "gen_ai.request.max_tokens",
    "temperature": "gen_ai.request.temperature",
    "top_p": "gen_ai.request.top_p",
    "top_k": "gen_ai.request.top_k",
    "seed": "gen_ai.request.seed",
    "n": "gen_ai.request.choice.count",
    "frequency_penalty": "gen_ai.request.frequency_penalty",
    "presence_penalty": "gen_ai.request.presence_penalty",
    "stop": "gen_ai.request.stop_sequences",
    "encoding_format": "gen_ai.request.encoding_formats",
}

#: ``gen_ai.provider.name`` of every model the garden serves.
PROVIDER: Final = "vllm"
#: ``gen_ai.operation.name`` of each router endpoint.
OPERATIONS: Final = {
    "chat": "chat",
    "completions": "text_completion",
    "responses": "chat",  # the GenAI conventions have no operation of its own for it
    "embeddings": "embeddings",
    "tokenize": "tokenize",
    "detokenize": "detokenize",
}

# -- metrics (Ray's exporter adds its ``ray_`` namespace, and ``_total`` to counters) --
METRIC_ROUTE: Final = "garden_route"
METRIC_DECISION_SECONDS: Final = "garden_route_decision_seconds"
#: Routed streams continued on the generalist after their model failed mid-stream.
METRIC_RESUMED: Final = "garden_route_resumed"
TAG_FROM: Final = "from"
TAG_DOMAIN: Final = "domain"
TAG_MODEL: Final = "model"
TAG_REASON: Final = "reason"

#: The GenAI conventions' metrics, as Prometheus names them (dots become
#: underscores; Ray's exporter adds ``ray_``): tokens per request by type,
#: the request's duration and its time to first token, in seconds.
METRIC_GENAI_TOKEN_USAGE: Final = "gen_ai_client_token_usage"
METRIC_GENAI_REQUEST_DURATION: Final = "gen_ai_server_request_duration"
METRIC_GENAI_TIME_TO_FIRST_TOKEN: Final = "gen_ai_server_time_to_first_token"
TAG_GENAI_OPERATION: Final = "gen_ai_operation_name"
TAG_GENAI_REQUEST_MODEL: Final = "gen_ai_request_model"
TAG_GENAI_RESPONSE_MODEL: Final = "gen_ai_response_model"
TAG_GENAI_TOKEN_TYPE: Final = "gen_ai_token_type"
TAG_ERROR_TYPE: Final = "error_type"

#: Per API key (router.auth): requests answered, tokens (input and output, as
#: OpenTelemetry's gen_ai.token.type), spend at the models' cost_per_hour,
#: and requests refused over a limit (requests, tokens or concurrency).
METRIC_KEY_REQUESTS: Final = "garden_key_requests"
METRIC_KEY_TOKENS: Final = "garden_key_tokens"
METRIC_KEY_SPEND: Final = "garden_key_spend"
METRIC_KEY_LIMITED: Final = "garden_key_rate_limited"
TAG_KEY: Final = "key"
TAG_LIMIT: Final = "limit"
TAG_TOKEN_TYPE: Final = "token_type"
