"""The RayService manifest of a garden, built as the chart's ``rayservice.yaml`` builds it.

:func:`render_rayservice` takes the chart's values (defaults, a values file,
and the garden config as values), validates them as Helm would (the chart's
schema) and as ``garden up`` would (the config's own rules), and returns the
RayService object. Its ``serveConfigV2`` deploys ``cluster.app:garden_app``
with ``args.config`` exactly the garden config given.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from cluster.config import GardenConfig, parse_config
from cluster.exceptions import ConfigError
from cluster.k8s import _names
from cluster.k8s._checks import cluster_problems
from cluster.k8s._values import ChartValues, Resources, WorkerGroup
from cluster.k8s._values_schema import GARDEN_KEYS, validate_values
from cluster.k8s._yaml import dump_yaml

__all__ = ["IMPORT_PATH", "chart_values", "merge_values", "render_rayservice"]

#: Serve's application builder that the RayService deploys.
IMPORT_PATH = "cluster.app:garden_app"

#: The garden keys whose chart default is an empty map (``values.yaml``).
_MAP_KEYS = ("router", "autoscaling", "budget", "telemetry")


def merge_values(base: Mapping[str, Any], over: Mapping[str, Any]) -> dict[str, Any]:
    """Helm's coalescing: maps merge key by key, anything else replaces; null deletes."""
    out = dict(base)
    for key, value in over.items():
        if value is None:
            out.pop(key, None)
        elif isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
            out[key] = merge_values(out[key], value)
        else:
            out[key] = value
    return out


def chart_values(garden: Mapping[str, Any], values: Mapping[str, Any] | None) -> dict[str, Any]:
    """The values a ``helm install -f VALUES -f garden.yaml`` would render with.

    The chart's default models are always replaced by the garden's, so they
    are not needed here; its other garden keys default to empty maps.
    """
    defaults = {**ChartValues().dump(), **{key: {} for key in _MAP_KEYS}}
    return merge_values(merge_values(defaults, values or {}), garden)


def _garden_config(values: Mapping[str, Any]) -> dict[str, Any]:
    """``args.config``: the garden keys of the values, as given (defaults stay the garden's)."""
    return {key: values[key] for key in GARDEN_KEYS if key in values}


def _serve_config(values: Mapping[str, Any], garden: GardenConfig, cv: ChartValues) -> str:
    serve = {
        "proxy_location": "EveryNode",
        # The proxy must listen on the pod's address for KubeRay's Serve service;
        # router.host is for local gardens.
        "http_options": {"host": "0.0.0.0", "port": garden.router.port},
        "applications": [
            {
                "name": garden.name,
                "route_prefix": "/",
                "import_path": IMPORT_PATH,
                "args": {"config": _garden_config(values), "base_dir": cv.exemplars.mount_path},
            }
        ],
    }
    return dump_yaml(serve)


def _resources(resources: Resources, gpus: int) -> dict[str, Any]:
    extra = {"nvidia.com/gpu": gpus} if gpus else {}
    return {
        "requests": {**resources.requests, **extra},
        "limits": {**resources.limits, **extra},
    }


def _pod(
    cv: ChartValues,
    garden: GardenConfig,
    full: str,
    selector: dict[str, str],
    group: WorkerGroup | None,
) -> dict[str, Any]:
    """The pod template of the head (``group`` None) or of one worker group."""
    place = cv.head if group is None else group
    role = "ray-head" if group is None else "ray-worker"
    ports = [{"containerPort": garden.router.port, "name": "serve"}]
    if group is None:
        ports = [
            {"containerPort": 6379, "name": "gcs-server"},
            {"containerPort": 8265, "name": "dashboard"},
            {"containerPort": 10001, "name": "client"},
            *ports,
        ]
    ports.append({"containerPort": garden.telemetry.metrics_port, "name": "metrics"})
    mounts: list[dict[str, Any]] = [
        {"name": "exemplars", "mountPath": cv.exemplars.mount_path, "readOnly": True}
    ]
    # The ConfigMap is optional so that a RayService applied without the chart
    # still starts, with the exemplar sets bundled in the image.
    volumes: list[dict[str, Any]] = [
        {"name": "exemplars", "configMap": {"name": f"{full}-exemplars", "optional": True}}
    ]
    if group is not None:
        # vLLM's workers share tensors through /dev/shm; Docker's 64 MiB is too small.
        mounts.append({"name": "dshm", "mountPath": "/dev/shm"})
        volumes.append({"name": "dshm", "emptyDir": {"medium": "Memory"}})
    mounts += cv.volume_mounts
    volumes += cv.volumes
    container: dict[str, Any] = {
        "name": role,
        "image": f"{cv.image.repository}:{cv.image.tag or _names.app_version()}",
        "imagePullPolicy": cv.image.pull_policy,
        "ports": ports,
        "resources": _resources(place.resources, 0 if group is None else group.gpus),
        "env": [{"name": k, "value": v} for k, v in garden.router.serve_env().items()],
        "volumeMounts": mounts,
    }
    if cv.api_keys.existing_secret:
        container["envFrom"] = [{"secretRef": {"name": cv.api_keys.existing_secret}}]
    spec: dict[str, Any] = {"containers": [container], "volumes": volumes}
    if cv.image_pull_secrets:
        spec["imagePullSecrets"] = [{"name": n} for n in cv.image_pull_secrets]
    dumped = place.model_dump(mode="json", by_alias=True, exclude_none=True)
    for key in ("nodeSelector", "tolerations", "affinity"):
        if dumped[key]:
            spec[key] = dumped[key]
    metadata: dict[str, Any] = {
        "labels": {**selector, "app.kubernetes.io/component": role},
    }
    if cv.pod_annotations:
        metadata["annotations"] = dict(cv.pod_annotations)
    return {"metadata": metadata, "spec": spec}


def _cluster_config(
    cv: ChartValues, garden: GardenConfig, full: str, selector: dict[str, str]
) -> dict[str, Any]:
    metrics_port = str(garden.telemetry.metrics_port)
    head_params = {"dashboard-host": "0.0.0.0", "metrics-export-port": metrics_port}
    config: dict[str, Any] = {
        "rayVersion": cv.ray_version,
        "enableInTreeAutoscaling": cv.ray_autoscaler.enabled,
        "headGroupSpec": {
            "rayStartParams": {**head_params, **cv.head.ray_start_params},
            "template": _pod(cv, garden, full, selector, None),
        },
        "workerGroupSpecs": [
            {
                "groupName": g.name,
                "replicas": g.min_replicas if g.replicas is None else g.replicas,
                "minReplicas": g.min_replicas,
                "maxReplicas": g.max_replicas,
                "rayStartParams": {"metrics-export-port": metrics_port, **g.ray_start_params},
                "template": _pod(cv, garden, full, selector, g),
            }
            for g in cv.worker_groups
        ],
    }
    if cv.ray_autoscaler.enabled:
        config["autoscalerOptions"] = {"idleTimeoutSeconds": cv.ray_autoscaler.idle_timeout_seconds}
    gcs = cv.gcs_fault_tolerance
    if gcs.enabled:
        options: dict[str, Any] = {"redisAddress": gcs.redis_address}
        if gcs.redis_password_secret.name:
            ref = gcs.redis_password_secret.model_dump(mode="json")
            options["redisPassword"] = {"valueFrom": {"secretKeyRef": ref}}
        if gcs.external_storage_namespace:
            options["externalStorageNamespace"] = gcs.external_storage_namespace
        config["gcsFaultToleranceOptions"] = options
    return config


def render_rayservice(
    garden: Mapping[str, Any],
    values: Mapping[str, Any] | None = None,
    *,
    release: str,
    namespace: str,
    source: str = "<values>",
) -> dict[str, Any]:
    """The RayService of ``garden`` (a garden.yaml mapping) with chart ``values``.

    Raises :class:`ConfigError` naming each bad key path: the chart's schema
    first (as ``helm install`` would), then the garden config's rules, then
    the cluster rules (KubeRay's name limit, a worker group per accelerator).
    """
    merged = chart_values(garden, values)
    validate_values(merged, source)
    config = parse_config(_garden_config(merged), source=source)
    cluster = {k: v for k, v in merged.items() if k not in GARDEN_KEYS and not k.startswith("x-")}
    cv = ChartValues.model_validate(cluster)
    full = _names.fullname(merged, release)
    problems = _names.rayservice_name_problems(full) + cluster_problems(cv, config)
    if problems:
        raise ConfigError(source, problems)
    selector = _names.selector_labels(merged, release)
    spec: dict[str, Any] = {
        "upgradeStrategy": cv.upgrade_strategy.model_dump(
            mode="json", by_alias=True, exclude_none=True
        ),
        "serveConfigV2": _serve_config(merged, config, cv),
        "rayClusterConfig": _cluster_config(cv, config, full, selector),
    }
    return {
        "apiVersion": "ray.io/v1",
        "kind": "RayService",
        "metadata": {
            "name": full,
            "namespace": namespace,
            "labels": _names.chart_labels(merged, release),
        },
        "spec": spec,
    }
