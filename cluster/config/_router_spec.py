"""The router's config nodes: the ingress, its classifier, its virtual models and API keys."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Field, StringConstraints, field_validator

from cluster.config._auth_spec import AuthSpec
from cluster.config._types import CustomResources, Domain, Name, Strict

__all__ = [
    "ClassifierSpec",
    "CooldownSpec",
    "RequestLimitsSpec",
    "RouterSpec",
    "TelemetrySpec",
    "VirtualModelSpec",
]

_IMPORT_PATH = r"^[A-Za-z_][\w.]*:[A-Za-z_]\w*$"


class ClassifierSpec(Strict):
    """The domain classifier the router builds at start-up."""

    import_path: Annotated[str, StringConstraints(pattern=_IMPORT_PATH)] = Field(
        "router.classify:CascadeClassifier",
        description="'module:Class' of a classifier built as Class(texts, labels, **options) "
        "from the garden's exemplars; it must offer classify(text) -> Features.",
    )
    options: dict[str, Any] = Field(
        default_factory=dict, description="Keyword arguments passed to the classifier class."
    )


class VirtualModelSpec(Strict):
    """A model id the router answers by routing, such as ``auto``."""

    name: Name
    description: str = Field("", max_length=500, description="Shown in /v1/models.")
    fallback: bool = Field(
        True,
        description="Send a specialist's request to the generalist when the specialist is "
        "unhealthy, overloaded, over budget, failing or late. False never falls back "
        "(low confidence still goes to the generalist).",
    )
    default_threshold: float | None = Field(
        None, ge=0, le=1, description="Overrides router.default_threshold for this model."
    )
    thresholds: dict[Domain, Annotated[float, Field(ge=0, le=1)]] = Field(
        default_factory=dict, description="Per-domain overrides on top of router.thresholds."
    )


def _default_virtual_models() -> list[VirtualModelSpec]:
    return [
        VirtualModelSpec(
            name="auto", description="Specialized-first routing with generalist fallback."
        )
    ]


class CooldownSpec(Strict):
    """When a specialist stops getting routed traffic for a while (LiteLLM's cooldowns)."""

    failures: int = Field(
        1,
        ge=1,
        le=1000,
        description="Failed requests within window_s that put a model in cooldown; a "
        "routed stream without a first token by first_token_deadline_ms always does (a "
        "non-streamed one past reply_deadline_ms counts as one failure).",
    )
    window_s: float = Field(
        10.0, gt=0, le=3600, description="Seconds over which failures are counted."
    )
    cooldown_s: float = Field(
        5.0,
        gt=0,
        le=3600,
        description="Seconds a model in cooldown gets no routed requests (they go to the "
        "generalist, and those already waiting on it move there at once). Then one routed "
        "request at a time probes it; the first answer ends the cooldown, a failure or a "
        "miss starts another.",
    )


class RequestLimitsSpec(Strict):
    """What one request may be, checked by the router before anything else reads it."""

    max_body_bytes: int = Field(
        16 * 1024 * 1024,
        ge=1024,
        le=1024**3,
        description="Largest request body, bytes; a larger one is refused with 413 as it "
        "arrives, before it is parsed or tokenized (16 MiB leaves room for a few base64 "
        "images).",
    )
    body_timeout_s: float = Field(
        30.0,
        gt=0,
        le=3600,
        description="Seconds a request body may take to arrive; a client that sends it "
        "slower (slowloris) gets a 408 and its connection back, instead of holding one of "
        "the router's max_ongoing_requests.",
    )
    max_json_depth: int = Field(
        64,
        ge=4,
        le=512,
        description="Deepest nesting of objects and arrays a body may have (OpenAI bodies "
        "need under 10); deeper is a 400.",
    )
    max_messages: int = Field(
        4096,
        ge=1,
        le=1_000_000,
        description="Most chat messages one request may carry; more is a 400.",
    )


class RouterSpec(Strict):
    """The ingress deployment: the OpenAI-compatible HTTP front door."""

    default_threshold: float = Field(
        0.5,
        ge=0,
        le=1,
        description="Calibrated confidence a request needs to reach its domain's specialist.",
    )
    thresholds: dict[Domain, Annotated[float, Field(ge=0, le=1)]] = Field(
        default_factory=dict,
        description="Per-domain overrides of default_threshold, e.g. {law: 0.7}.",
    )
    classifier: ClassifierSpec = Field(
        default_factory=ClassifierSpec, description="The domain classifier."
    )
    virtual_models: list[VirtualModelSpec] = Field(
        default_factory=_default_virtual_models,
        min_length=1,
        description="Model ids answered by routing; the first is the default 'auto'.",
    )
    first_token_deadline_ms: int = Field(
        10_000,
        ge=50,
        le=600_000,
        description="A routed stream whose specialist has not sent its first token by then "
        "is cancelled and served by the generalist, and the specialist cools down.",
    )
    reply_deadline_ms: int = Field(
        120_000,
        ge=50,
        le=3_600_000,
        description="The same for a routed request that is not streamed: a specialist that "
        "has not answered by then loses it to the generalist, and it counts as one failure "
        "towards a cooldown. Set it above the longest answer a specialist should give.",
    )
    cooldown: CooldownSpec = Field(
        default_factory=CooldownSpec,
        description="How a failing or stalled specialist is kept out of routing for a while.",
    )
    session_ttl_s: float = Field(
        1800,
        ge=0,
        le=7 * 86_400,
        description="Sticky conversations: a routed turn with an x-session-id header (or "
        "an OpenAI 'user') goes where its conversation's domain decision says, while that "
        "model can take it; the decision lapses this many seconds after the last turn. "
        "0 turns stickiness off.",
    )
    state_refresh_s: float = Field(
        0.5,
        gt=0,
        le=1,
        description="How often the router refreshes each model's health from Ray Serve.",
    )
    ingress: Literal["haproxy", "proxy"] = Field(
        "haproxy",
        description=(
            "How HTTP reaches the router. 'haproxy': Ray Serve's throughput-optimized "
            "mode (RAY_SERVE_THROUGHPUT_OPTIMIZED, RAY_SERVE_ENABLE_HA_PROXY): HAProxy "
            "listens on host:port and forwards to each router replica's own HTTP server, "
            "and replicas call each other over gRPC. 'proxy': Ray Serve's Python HTTP "
            "proxy actor and actor calls between replicas. Applies to clusters the "
            "garden starts (local Ray, the Helm chart); a joined cluster keeps its own."
        ),
    )
    proxy_location: Literal["EveryNode", "HeadOnly"] = Field(
        "EveryNode",
        description="Ray Serve's proxy_location: where the HTTP ingress runs. 'EveryNode' "
        "(Serve's default, and what KubeRay's Serve service expects): on every node, so "
        "a node's loss leaves the others' ingress. 'HeadOnly': on the head node alone, "
        "for several Ray nodes on one machine, where every node's ingress would want "
        "the same host:port.",
    )
    host: str = Field("127.0.0.1", description="Address the HTTP ingress binds.")
    port: int = Field(8000, ge=1, le=65535, description="Port of the OpenAI-compatible API.")
    num_replicas: int = Field(
        2,
        ge=1,
        le=64,
        description="Router replicas. Two by default, so that one dying (or being replaced "
        "by an update) leaves the other serving while Serve starts its successor; each one "
        "holds the classifier (about 0.5 GiB resident, docs/reliability.md). HAProxy sends "
        "nothing to a dead one (a refused connection is retried on another).",
    )
    cpus: float = Field(0.5, gt=0, le=64, description="Logical CPUs per router replica.")
    custom_resources: CustomResources = Field(
        default_factory=dict,
        description="Ray custom resources per router replica, e.g. {'cpu-pool': 0.01}: the "
        "routers go only to nodes that offer them (`ray start --resources`, a KubeRay "
        "group's rayStartParams.resources), so that they stay off accelerator nodes, or "
        "off a node whose loss should take only models with it.",
    )
    retry_after_s: int = Field(
        1, ge=1, le=3600, description="Retry-After seconds sent with 429 and 503 answers."
    )
    max_ongoing_requests: int = Field(
        1024, ge=1, le=100_000, description="Requests one router replica handles at once."
    )
    auth: AuthSpec = Field(default_factory=AuthSpec, description="API keys clients must send.")
    request_limits: RequestLimitsSpec = Field(
        default_factory=RequestLimitsSpec,
        description="Size, nesting and message-count limits of a request body.",
    )

    @field_validator("virtual_models")
    @classmethod
    def _unique_virtual(cls, value: list[VirtualModelSpec]) -> list[VirtualModelSpec]:
        names = [v.name for v in value]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"virtual model names must be unique, repeated: {dupes}")
        return value

    def serve_env(self) -> dict[str, str]:
        """Environment every Ray process of the cluster needs for ``ingress``.

        Ray Serve reads these once per process, at import, so they must be set
        where Ray starts (``ray start``, the pod spec), not at deploy time.
        """
        flag = "1" if self.ingress == "haproxy" else "0"
        return {"RAY_SERVE_THROUGHPUT_OPTIMIZED": flag, "RAY_SERVE_ENABLE_HA_PROXY": flag}

    def threshold_domains(self) -> set[str]:
        """Every domain named by a threshold, router-wide or per virtual model."""
        named = set(self.thresholds)
        for v in self.virtual_models:
            named |= set(v.thresholds)
        return named


class TelemetrySpec(Strict):
    """Where the garden's traces and metrics go."""

    traces_endpoint: str | None = Field(
        None,
        pattern=r"^https?://",
        description="OTLP/HTTP endpoint the router exports one span per request to, e.g. "
        "http://otel-collector:4318/v1/traces. Unset: spans go to the process's global "
        "OpenTelemetry provider (a no-op unless one is installed).",
    )
    record_content: bool = Field(
        False,
        description="Record prompt and response text in spans (gen_ai.input.messages, "
        "gen_ai.output.messages). Off by default, as OpenTelemetry's GenAI conventions "
        "advise: the text may hold personal data.",
    )
    metrics_port: int = Field(
        8080,
        ge=1,
        le=65535,
        description="Port of the Prometheus endpoint of Ray's metrics agent on a local "
        "garden's head (ray start --metrics-export-port); garden_route_* and vLLM's and "
        "Serve's series are scraped there.",
    )
