"""Turn a :class:`~cluster.config.ModelSpec` into a ``ray.serve.llm`` deployment.

Every model, specialist or generalist, CPU or GPU, goes through
:func:`build_model_deployment` and runs the same deployment class,
:class:`GardenModel` (Ray Serve LLM's ``LLMServer``); only the config differs.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from cluster.config import GardenConfig, ModelSpec
from cluster.exceptions import ModelSourceError
from cluster.tracing import TRACES_ENDPOINT_ENV
from deployments._pacing import STREAM_BATCHING_KEY
from deployments.tiny import is_built, model_path

if TYPE_CHECKING:
    from ray.serve.deployment import Application
    from ray.serve.llm import LLMConfig

__all__ = [
    "GARDEN_ENV_MARKER",
    "PREFIX_AWARE_ROUTER",
    "build_llm_config",
    "build_model_deployment",
    "deployment_options",
    "import_serving_code",
    "placement_group_config",
    "resolve_source",
    "server_class",
]

#: Ray Serve LLM's prefix-aware request router (``replica_router: prefix_aware``).
PREFIX_AWARE_ROUTER = "ray.serve.llm.request_router:PrefixCacheAffinityRouter"

#: Set in every model replica and inherited by its engine processes, so that
#: ``garden down`` can find engines that outlived their replica.
GARDEN_ENV_MARKER = "MODEL_GARDEN_APP"


def resolve_source(garden: GardenConfig, spec: ModelSpec) -> str:
    """The checkpoint vLLM should load for ``spec``: a checked local path or a model id.

    Raises :class:`ModelSourceError` naming the model when a local checkpoint
    is missing (or a tiny one is stale), before anything is deployed.
    """
    if spec.tiny is not None:
        path = model_path(garden, spec)
        if not is_built(path, spec.tiny):
            raise ModelSourceError(spec.name, str(path), "Build it with `garden models build`.")
        return str(path)
    assert spec.source is not None  # guaranteed by ModelSpec validation
    local = Path(spec.source).expanduser()
    looks_local = spec.source.startswith(("/", "~", ".")) or local.exists()
    if looks_local and not (local / "config.json").is_file():
        raise ModelSourceError(
            spec.name, str(local), "Point 'source' at a directory with a config.json."
        )
    return str(local) if looks_local else spec.source


def placement_group_config(spec: ModelSpec) -> dict[str, Any]:
    """Placement group of one replica: the replica actor and its engine share it."""
    res = spec.resources
    if res.gpus == 0:
        return {"bundles": [{"CPU": res.cpus, **res.custom}], "strategy": "PACK"}
    workers = int(spec.engine.get("tensor_parallel_size", 1)) * int(
        spec.engine.get("pipeline_parallel_size", 1)
    )
    # Each engine worker's bundle carries its share, so the whole replica asks for `custom`.
    per_worker = {
        "GPU": res.gpus / workers,
        "CPU": res.cpus / workers,
        **{name: amount / workers for name, amount in res.custom.items()},
    }
    return {"bundle_per_worker": per_worker, "strategy": "PACK"}


def autoscaling_config(garden: GardenConfig, spec: ModelSpec) -> dict[str, Any]:
    """Ray Serve ``autoscaling_config`` of ``spec``: bounds, timing and the policy.

    With the garden policy, Ray's own delays are zero: the policy times its
    decisions itself (``autoscaling._timing``), by the model's cold start.
    """
    from autoscaling.policy import POLICY_IMPORT_PATH

    scaling = spec.autoscaling
    timing = garden.autoscaling
    config: dict[str, Any] = {
        "min_replicas": scaling.min_replicas,
        "max_replicas": scaling.max_replicas,
        "initial_replicas": scaling.start_replicas,
        "target_ongoing_requests": scaling.target_ongoing_requests,
        "upscale_delay_s": timing.upscale_delay_s,
        "downscale_delay_s": timing.downscale_delay_s,
        "look_back_period_s": timing.look_back_period_s,
        "metrics_interval_s": timing.metrics_interval_s,
    }
    if garden.policy_of(spec) == "garden":
        config["policy"] = {
            "policy_function": POLICY_IMPORT_PATH,
            "policy_kwargs": {
                "target_ongoing_requests": scaling.target_ongoing_requests,
                "min_replicas": scaling.min_replicas,
                "max_replicas": scaling.max_replicas,
                "kv_target": timing.kv_target,
                "app": garden.name,
                "model": spec.name,
                "generalist": garden.generalist.name,
                "profile": timing.profile,
                "ttft_ms": spec.slo.ttft_ms,
                "ttft_ms_per_1k_prompt_tokens": spec.slo.ttft_ms_per_1k_prompt_tokens,
                "tpot_ms": spec.slo.tpot_ms,
                "miss_penalty": timing.miss_penalty,
                "cost_per_hour": spec.cost_per_hour,
                "gpus": spec.resources.gpus,
                "priority": scaling.priority,
                "max_cost_per_hour": garden.budget.max_cost_per_hour,
                "max_gpus": garden.budget.max_gpus,
                "read_spills": True,
            },
        }
        config.update(upscale_delay_s=0.0, downscale_delay_s=0.0)
    return config


#: How long Serve waits for a released replica's requests, and then lets it
#: live at most, in seconds (Serve's defaults).
GRACEFUL_SHUTDOWN_WAIT_LOOP_S = 2.0
GRACEFUL_SHUTDOWN_TIMEOUT_S = 20.0


def deployment_options(garden: GardenConfig, spec: ModelSpec) -> dict[str, Any]:
    """Ray Serve deployment options of ``spec``'s deployment.

    Admission limits replace Ray Serve LLM's 1e9 defaults, so requests queue
    (boundedly) at the router and the autoscaler sees real load. Serve bounds
    the queue at each caller (each router replica's handle), so every router
    gets its share of ``limits.max_queued_requests``: the garden as a whole
    queues what the config says, however many routers it runs.
    """
    routers = garden.router.num_replicas
    options: dict[str, Any] = {
        "name": spec.name,
        "max_ongoing_requests": spec.limits.max_ongoing_requests,
        "max_queued_requests": -(-spec.limits.max_queued_requests // routers),
        "backpressure_config": {
            "status_code": 429,
            "retry_after_s": garden.router.retry_after_s,
        },
        "autoscaling_config": autoscaling_config(garden, spec),
        # Serve's defaults, set here because the budget ledger counts a
        # released replica as draining for at most their sum (DRAIN_BOUND_S).
        "graceful_shutdown_wait_loop_s": GRACEFUL_SHUTDOWN_WAIT_LOOP_S,
        "graceful_shutdown_timeout_s": GRACEFUL_SHUTDOWN_TIMEOUT_S,
        # The replica's CPU share lives in the placement bundle it shares with the engine.
        "ray_actor_options": {"num_cpus": 0},
    }
    if spec.replica_router == "prefix_aware":
        # Ray Serve LLM's own: it reads the prompt from the call's argument with a
        # `messages` or `prompt` attribute (deployments.protocol.RequestBody).
        options["request_router_config"] = {"request_router_class": PREFIX_AWARE_ROUTER}
    return options


def build_llm_config(garden: GardenConfig, spec: ModelSpec) -> LLMConfig:
    """The ``LLMConfig`` of ``spec``; engine args pass through unchanged.

    With ``spec.lora``, its ``lora_config`` and the engine arguments vLLM needs
    for adapters (``enable_lora``, ``max_lora_rank``, ``max_loras``) are added;
    an embedder runs vLLM's pooling runner (:meth:`ModelSpec.engine_kwargs`).
    """
    from ray.serve.llm import LLMConfig

    from deployments._callbacks import LocalCheckpoint
    from deployments._internals import CallbackConfig

    env = {**spec.env, GARDEN_ENV_MARKER: garden.name}
    if garden.telemetry.traces_endpoint is not None:
        # The replica's own span (deployments._tracing) goes where the router's go.
        env.setdefault(TRACES_ENDPOINT_ENV, garden.telemetry.traces_endpoint)
    source = resolve_source(garden, spec)
    local = Path(source).is_dir()
    return LLMConfig(
        model_loading_config={"model_id": spec.name, "model_source": source},
        callback_config=CallbackConfig(callback_class=LocalCheckpoint)
        if local
        else CallbackConfig(),
        engine_kwargs=spec.engine_kwargs(),
        lora_config=spec.lora.lora_config() if spec.lora else None,
        accelerator_type=spec.resources.accelerator_type,
        placement_group_config=placement_group_config(spec),
        deployment_config=deployment_options(garden, spec),
        runtime_env={"env_vars": env},
        experimental_configs={
            "stream_batching_interval_ms": spec.stream_batching_interval_ms,
            STREAM_BATCHING_KEY: spec.stream_batching,
        },
    )


def build_model_deployment(garden: GardenConfig, spec: ModelSpec) -> Application:
    """The bound Serve deployment serving ``spec`` (not yet deployed)."""
    from ray.serve.llm import build_llm_deployment

    return build_llm_deployment(
        build_llm_config(garden, spec),
        deployment_cls=server_class(),
        override_serve_options={"name": spec.name},
    )


def server_class() -> type[Any]:
    """The one deployment class every model runs (Ray Serve LLM's ``LLMServer``, hooked).

    Public for what runs the garden's replicas under another ingress (the
    overhead benchmark's ``ray_llm_lean``: Ray Serve LLM's ``server_cls``).
    """
    from deployments._server import GardenModel

    return GardenModel


def import_serving_code() -> None:
    """Import what a model replica runs (Ray Serve LLM, vLLM, torch): ~15 s of a core.

    A driver that calls this while Ray starts overlaps the two; the later
    :func:`build_model_deployment` then finds the modules loaded.
    """
    import deployments._server  # noqa: F401
