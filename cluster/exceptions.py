"""The garden's exception hierarchy.

Every error the garden raises on purpose derives from :class:`GardenError`.
Operator-facing errors (config, cluster) carry what to do next; request-facing
errors (:class:`RequestError`) carry everything the ingress needs to answer in
the OpenAI error shape, so no layer has to guess a status code.
"""

from __future__ import annotations

__all__ = [
    "AuthenticationError",
    "ClusterError",
    "ConfigError",
    "ContextLengthError",
    "DataFileError",
    "EndpointNotSupportedError",
    "FirstTokenTimeoutError",
    "GardenError",
    "InvalidRequestError",
    "KubeForbiddenError",
    "KubeRayMissingError",
    "KubeconfigError",
    "KubernetesError",
    "ModelNotFoundError",
    "ModelSourceError",
    "ModelUnavailableError",
    "PortInUseError",
    "QueueFullError",
    "QuotaStoreError",
    "RateLimitError",
    "RayServiceNotFoundError",
    "RequestError",
    "RequestTimeoutError",
    "RequestTooLargeError",
    "StartupError",
    "StoreUnavailableError",
    "UnsupportedRequestError",
    "UpstreamError",
]


class GardenError(Exception):
    """Base of every error the garden raises deliberately."""


# --- operator-facing -------------------------------------------------------


class ConfigError(GardenError):
    """A garden config is invalid. ``problems`` holds one line per bad key path."""

    def __init__(self, source: str, problems: list[str]) -> None:
        self.source = source
        self.problems = problems
        lines = "\n".join(f"  - {p}" for p in problems)
        super().__init__(f"invalid garden config {source}:\n{lines}")


class ModelSourceError(GardenError):
    """A model's weights are not where its config says."""

    def __init__(self, model: str, source: str, hint: str) -> None:
        self.model = model
        self.source = source
        super().__init__(f"model {model!r}: no checkpoint at {source}. {hint}")


class DataFileError(GardenError):
    """A data file the garden reads (exemplars, evaluation rows) is malformed.

    The message names the file and line, and what is wrong there.
    """


class ClusterError(GardenError):
    """Ray or Ray Serve could not be started, reached or stopped."""


class PortInUseError(ClusterError):
    """The ingress port is already bound by another process."""

    def __init__(self, host: str, port: int) -> None:
        self.host = host
        self.port = port
        super().__init__(
            f"port {port} on {host} is already in use. Stop whatever listens there "
            f"(`garden down` if it is an earlier garden) or set router.port in the config."
        )


class StartupError(ClusterError):
    """A deployment failed or did not become healthy in time."""


# --- request-facing --------------------------------------------------------


class RequestError(GardenError):
    """An error answered to an HTTP client in the OpenAI error shape.

    Subclasses fix ``status_code`` and ``error_type``; instances may add the
    offending ``param``, a machine-readable ``code`` and a ``retry_after``
    hint in seconds.
    """

    status_code: int = 400
    error_type: str = "invalid_request_error"

    def __init__(
        self,
        message: str,
        *,
        param: str | None = None,
        code: str | None = None,
        retry_after: float | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.param = param
        self.code = code
        self.retry_after = retry_after
        #: Extra response headers (a rate limit's ``x-ratelimit-*``).
        self.headers = dict(headers or {})

    def to_body(self) -> dict[str, dict[str, str | None]]:
        """The OpenAI error body: ``{"error": {message, type, param, code}}``."""
        return {
            "error": {
                "message": self.message,
                "type": self.error_type,
                "param": self.param,
                "code": self.code,
            }
        }


class InvalidRequestError(RequestError):
    """Malformed body or parameter (400)."""


class ContextLengthError(InvalidRequestError):
    """Prompt plus max_tokens exceed the model's context window (400)."""

    def __init__(self, message: str) -> None:
        super().__init__(message, param="max_tokens", code="context_length_exceeded")


class UnsupportedRequestError(InvalidRequestError):
    """The request needs a feature (tools, images, ...) that no candidate model has (400)."""

    def __init__(self, message: str, *, param: str | None = None) -> None:
        super().__init__(message, param=param, code="unsupported_feature")


class EndpointNotSupportedError(InvalidRequestError):
    """The named model does not serve this endpoint (400, ``param`` ``model``).

    A chat request to an embedder, embeddings from a model that generates,
    or tokenize with a virtual model (which names no one tokenizer).
    """

    def __init__(self, message: str) -> None:
        super().__init__(message, param="model", code="model_not_supported")


class RequestTooLargeError(InvalidRequestError):
    """The request body is over ``router.request_limits.max_body_bytes`` (413)."""

    status_code = 413

    def __init__(self, message: str) -> None:
        super().__init__(message, code="request_too_large")


class RequestTimeoutError(InvalidRequestError):
    """The request body did not arrive within ``router.request_limits.body_timeout_s`` (408)."""

    status_code = 408

    def __init__(self, message: str) -> None:
        super().__init__(message, code="request_timeout")


class AuthenticationError(RequestError):
    """No API key, or one the garden does not know (401), as OpenAI answers it."""

    status_code = 401

    def __init__(self, message: str) -> None:
        super().__init__(message, code="invalid_api_key")


class ModelNotFoundError(RequestError):
    """The requested model id is not served by this garden (404)."""

    status_code = 404

    def __init__(self, model: str, available: list[str]) -> None:
        super().__init__(
            f"The model {model!r} does not exist. Available models: {', '.join(available)}.",
            param="model",
            code="model_not_found",
        )


class QueueFullError(RequestError):
    """The model's bounded queue is full (429); retry after ``retry_after`` s."""

    status_code = 429
    error_type = "rate_limit_error"


class RateLimitError(RequestError):
    """An API key is over one of its limits (429, OpenAI's ``rate_limit_exceeded``).

    ``limit`` is which: ``requests``, ``tokens`` or ``concurrency`` (OpenAI
    puts ``requests`` or ``tokens`` in the error's ``type``).
    """

    status_code = 429

    def __init__(
        self, message: str, *, limit: str, retry_after: float, headers: dict[str, str]
    ) -> None:
        super().__init__(
            message, code="rate_limit_exceeded", retry_after=retry_after, headers=headers
        )
        self.error_type = limit


class StoreUnavailableError(RequestError):
    """The quota store cannot be reached and ``router.auth.store.on_error`` is closed (503)."""

    status_code = 503
    error_type = "service_unavailable"

    def __init__(self, message: str) -> None:
        super().__init__(message, code="quota_store_unavailable", retry_after=1)


class QuotaStoreError(GardenError):
    """The store of the per-key quota counters failed or timed out."""


class ModelUnavailableError(RequestError):
    """The model has no healthy replica right now (503)."""

    status_code = 503
    error_type = "service_unavailable"


class UpstreamError(RequestError):
    """The engine failed while serving the request (500 unless told)."""

    status_code = 500
    error_type = "server_error"

    def __init__(self, message: str, *, status_code: int = 500, code: str | None = None) -> None:
        super().__init__(message, code=code)
        self.status_code = status_code


class FirstTokenTimeoutError(UpstreamError):
    """A model sent no first token within ``router.first_token_deadline_ms`` (504)."""

    def __init__(self, message: str) -> None:
        super().__init__(message, status_code=504, code="first_token_deadline")


# --- Kubernetes (garden k8s) -----------------------------------------------


class KubernetesError(ClusterError):
    """The Kubernetes API could not be reached, or refused a request."""


class KubeconfigError(KubernetesError):
    """No usable credentials: no kubeconfig, and not running inside a pod."""


class KubeRayMissingError(KubernetesError):
    """The cluster does not serve ``ray.io/v1`` RayServices: KubeRay is not installed."""

    def __init__(self, detail: str) -> None:
        super().__init__(
            f"the cluster has no RayService resource (ray.io/v1): {detail}. Install the KubeRay "
            "operator and its CRDs first (docs/kubernetes.md, 'Install the KubeRay operator')."
        )


class KubeForbiddenError(KubernetesError):
    """The API server answered 403: the identity may not do this in this namespace."""

    def __init__(self, verb: str, resource: str, namespace: str, detail: str) -> None:
        self.verb = verb
        self.namespace = namespace
        super().__init__(
            f"forbidden: cannot {verb} {resource} in namespace {namespace!r} ({detail}). Ask "
            f"for a Role granting '{verb}' on rayservices.ray.io there, or use --namespace "
            "or --context for one you may use."
        )


class RayServiceNotFoundError(KubernetesError):
    """The named RayService does not exist in the namespace."""

    def __init__(self, name: str, namespace: str) -> None:
        self.name = name
        self.namespace = namespace
        super().__init__(
            f"no RayService {name!r} in namespace {namespace!r}. Check --release/--name and "
            "--namespace, or create it with `garden k8s apply` (or `helm install`)."
        )
