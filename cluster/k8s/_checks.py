"""Rules across values that a JSON Schema cannot state; the chart ``fail``s on the same ones.

Each problem names its key path and the bad value, as config errors do.
"""

from __future__ import annotations

from cluster.config import GardenConfig, ModelSpec
from cluster.k8s._values import ChartValues, WorkerGroup

__all__ = ["cluster_problems"]


def _group_problems(groups: list[WorkerGroup]) -> list[str]:
    problems = []
    seen: set[str] = set()
    for i, g in enumerate(groups):
        if g.name in seen:
            problems.append(f"workerGroups[{i}].name: {g.name!r} is used by another group")
        seen.add(g.name)
        if g.min_replicas > g.max_replicas:
            problems.append(
                f"workerGroups[{i}].minReplicas: {g.min_replicas} is above "
                f"maxReplicas={g.max_replicas}"
            )
        if g.replicas is not None and not g.min_replicas <= g.replicas <= g.max_replicas:
            problems.append(
                f"workerGroups[{i}].replicas: {g.replicas} is outside "
                f"[{g.min_replicas}, {g.max_replicas}]"
            )
        if g.accelerator_type is not None and g.gpus == 0:
            problems.append(
                f"workerGroups[{i}].acceleratorType: {g.accelerator_type!r} needs gpus > 0"
            )
    return problems


def _placement_problem(i: int, model: ModelSpec, groups: list[WorkerGroup]) -> str | None:
    """Why no worker group can hold one replica of a GPU model, or None when one can."""
    res = model.resources
    if res.gpus == 0:
        return None
    fits = [g for g in groups if g.gpus > 0]
    if res.accelerator_type is not None:
        fits = [g for g in fits if g.accelerator_type == res.accelerator_type]
        if not fits:
            return (
                f"models[{i}].resources.accelerator_type: no worker group has acceleratorType "
                f"{res.accelerator_type!r}; add one to workerGroups"
            )
    if not fits:
        return f"models[{i}].resources.gpus: {res.gpus:g} GPUs but no worker group has gpus > 0"
    most = max(g.gpus for g in fits)
    if res.gpus > most:
        return (
            f"models[{i}].resources.gpus: {res.gpus:g} GPUs per replica, but its worker "
            f"groups have at most {most} per pod"
        )
    return None


def cluster_problems(cv: ChartValues, garden: GardenConfig) -> list[str]:
    """Every cross-key problem of the cluster values against the garden's models."""
    problems = _group_problems(cv.worker_groups)
    for i, model in enumerate(garden.models):
        problem = _placement_problem(i, model, cv.worker_groups)
        if problem:
            problems.append(problem)
    strategy = cv.upgrade_strategy
    if strategy.type == "NewClusterWithIncrementalUpgrade" and not strategy.cluster_upgrade_options:
        problems.append(
            "upgradeStrategy.clusterUpgradeOptions: required by type "
            "NewClusterWithIncrementalUpgrade (gatewayClassName, stepSizePercent, intervalSeconds)"
        )
    gcs = cv.gcs_fault_tolerance
    if gcs.enabled and not gcs.redis_address:
        problems.append("gcsFaultTolerance.redisAddress: required when enabled (got '')")
    keys_env = garden.router.auth.api_keys_env
    if keys_env is not None and not cv.api_keys.existing_secret:
        problems.append(
            f"router.auth.api_keys_env: {keys_env!r} must come from the Secret named by "
            "apiKeys.existingSecret (got ''); without it the router cannot start"
        )
    tls = cv.ingress.tls
    if cv.ingress.enabled and tls.enabled and not (tls.secret_name and cv.ingress.host):
        problems.append(
            "ingress.tls: TLS needs ingress.host and ingress.tls.secretName "
            f"(got host={cv.ingress.host!r}, secretName={tls.secret_name!r})"
        )
    return problems
