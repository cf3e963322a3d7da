"""ModelSpec → Serve deployment options and placement: one code path for CPU and GPU."""

from __future__ import annotations

import json
from typing import Any

import pytest
import yaml

from cluster.config import GardenConfig, default_config_text, load_config, parse_config
from cluster.exceptions import ModelSourceError
from deployments.model import deployment_options, placement_group_config, resolve_source

pytestmark = pytest.mark.unit


def _gpu_garden() -> Any:
    data = json.loads(json.dumps(yaml.safe_load(default_config_text())))
    for m in data["models"]:
        m.pop("tiny")
        m.pop("env")
        m["source"] = f"org/{m['name']}-8b"
        m["engine"] = {"tensor_parallel_size": 2, "max_model_len": 8192}
        m["resources"] = {"cpus": 4, "gpus": 2, "accelerator_type": "L4"}
    return parse_config(data)


def test_cpu_replica_shares_one_cpu_bundle_with_its_engine() -> None:
    garden = load_config(None)
    spec = garden.model("law")
    assert placement_group_config(spec) == {"bundles": [{"CPU": 0.25}], "strategy": "PACK"}
    opts = deployment_options(garden, spec)
    assert opts["ray_actor_options"] == {"num_cpus": 0}


def test_gpu_replica_gets_one_bundle_per_tensor_parallel_worker() -> None:
    garden = _gpu_garden()
    pg = placement_group_config(garden.model("medicine"))
    assert pg == {"bundle_per_worker": {"GPU": 1.0, "CPU": 2.0}, "strategy": "PACK"}


def test_custom_resources_go_into_the_replica_bundles() -> None:
    data = json.loads(json.dumps(yaml.safe_load(default_config_text())))
    law = next(m for m in data["models"] if m["name"] == "law")
    law["resources"]["custom"] = {"pool-a": 1}
    spec = parse_config(data).model("law")
    assert placement_group_config(spec) == {
        "bundles": [{"CPU": 0.25, "pool-a": 1.0}],
        "strategy": "PACK",
    }
    gpu = (
        _gpu_garden()
        .model("medicine")
        .model_copy(
            update={
                "resources": _gpu_garden()
                .model("medicine")
                .resources.model_copy(update={"custom": {"pool-a": 2.0}})
            }
        )
    )
    per_worker = placement_group_config(gpu)["bundle_per_worker"]
    assert per_worker == {"GPU": 1.0, "CPU": 2.0, "pool-a": 1.0}  # 2 workers share it


@pytest.mark.parametrize(
    ("custom", "echo"),
    [
        ({"CPU": 1}, "'CPU'"),
        ({"node:10.0.0.1": 1}, "'node:10.0.0.1'"),
        ({"bad name": 1}, "'bad name'"),
        ({"pool": 0}, "greater than 0"),
    ],
)
def test_custom_resources_reject_ray_names_and_bad_values(
    custom: dict[str, float], echo: str
) -> None:
    from cluster.exceptions import ConfigError

    data = json.loads(json.dumps(yaml.safe_load(default_config_text())))
    data["models"][0]["resources"]["custom"] = custom
    with pytest.raises(ConfigError) as info:
        parse_config(data)
    assert echo in str(info.value)
    assert "models[0].resources.custom" in str(info.value)


def test_limits_and_autoscaling_replace_ray_llm_defaults() -> None:
    garden = load_config(None)
    spec = garden.model("generalist")
    opts = deployment_options(garden, spec)
    assert opts["name"] == "generalist"
    assert opts["max_ongoing_requests"] == spec.limits.max_ongoing_requests
    # Serve bounds the queue per caller: each of the routers gets its share.
    routers = garden.router.num_replicas
    assert routers == 2
    assert opts["max_queued_requests"] == spec.limits.max_queued_requests // routers
    one = garden.model_copy(update={"router": garden.router.model_copy(update={"num_replicas": 3})})
    assert deployment_options(one, spec)["max_queued_requests"] == 32  # ceil(96 / 3)
    assert opts["backpressure_config"] == {"status_code": 429, "retry_after_s": 1}
    scaling = opts["autoscaling_config"]
    assert scaling["min_replicas"] == spec.autoscaling.min_replicas
    assert scaling["max_replicas"] == spec.autoscaling.max_replicas
    assert scaling["target_ongoing_requests"] == spec.autoscaling.target_ongoing_requests


def test_the_garden_policy_times_itself_by_its_profile_not_rays_delays() -> None:
    from ray.serve.config import AutoscalingConfig

    garden = load_config(None)
    spec = garden.model("law")
    scaling = deployment_options(garden, spec)["autoscaling_config"]
    policy = scaling["policy"]
    assert policy["policy_function"] == "autoscaling.policy:GardenPolicy"
    kwargs = policy["policy_kwargs"]
    assert "upscale_delay_s" not in kwargs and "downscale_delay_s" not in kwargs
    assert kwargs["target_ongoing_requests"] == spec.autoscaling.target_ongoing_requests
    assert kwargs["profile"] == garden.autoscaling.profile == "cpu-tiny"
    assert kwargs["generalist"] == garden.generalist.name
    assert kwargs["ttft_ms"] == spec.slo.ttft_ms
    assert kwargs["kv_target"] == garden.autoscaling.kv_target
    # The controller builds the policy from these kwargs: the profile resolves.
    from autoscaling.policy import GardenPolicy
    from autoscaling.profile import load_profiles

    built = GardenPolicy(**{**kwargs, "read_spills": False})
    assert built.capacity.cold_start_s == load_profiles("cpu-tiny").for_model("law").cold_start_s
    assert scaling["upscale_delay_s"] == scaling["downscale_delay_s"] == 0
    AutoscalingConfig(**scaling)  # Ray accepts it, and can import the class


def test_ray_default_policy_keeps_rays_delays() -> None:
    data = load_config(None).model_dump(mode="json")
    data["autoscaling"]["policy"] = "ray-default"
    garden = GardenConfig.model_validate(data)
    scaling = deployment_options(garden, garden.model("law"))["autoscaling_config"]
    assert "policy" not in scaling
    assert scaling["upscale_delay_s"] == garden.autoscaling.upscale_delay_s


def test_hub_ids_pass_through_and_missing_local_dirs_name_the_model(tmp_path: Any) -> None:
    garden = _gpu_garden()
    assert resolve_source(garden, garden.model("code")) == "org/code-8b"
    local = garden.model("code").model_copy(update={"source": str(tmp_path / "gone")})
    with pytest.raises(ModelSourceError, match="model 'code'"):
        resolve_source(garden, local)


def test_declarative_builder_validates_its_args() -> None:
    from cluster.app import garden_app
    from cluster.exceptions import ConfigError

    with pytest.raises(ConfigError, match=r"args\.config"):
        garden_app({})
    bad = yaml.safe_load(default_config_text())
    bad["router"]["port"] = "eighty"
    with pytest.raises(ConfigError, match=r"router\.port"):
        garden_app({"config": bad})


def test_a_models_own_policy_overrides_the_garden_wide_one() -> None:
    data = load_config(None).model_dump(mode="json")
    data["autoscaling"]["policy"] = "ray-default"
    data["models"][1]["autoscaling"]["policy"] = "garden"  # law
    garden = GardenConfig.model_validate(data)
    law = deployment_options(garden, garden.model("law"))["autoscaling_config"]
    code = deployment_options(garden, garden.model("code"))["autoscaling_config"]
    assert law["policy"]["policy_kwargs"]["model"] == "law"
    assert (law["upscale_delay_s"], law["downscale_delay_s"]) == (0.0, 0.0)
    assert "policy" not in code


def test_the_ledgers_drain_bound_covers_serves_shutdown_of_a_released_replica() -> None:
    from autoscaling._ledger import DRAIN_BOUND_S

    garden = load_config(None)
    options = deployment_options(garden, garden.model("law"))
    shutdown = options["graceful_shutdown_wait_loop_s"] + options["graceful_shutdown_timeout_s"]
    assert shutdown <= DRAIN_BOUND_S
