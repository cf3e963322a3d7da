"""``simulate``: replay a trace through a simulated garden under one autoscaling policy."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence
from typing import Any, Literal

from autoscaling._ledger import Budget, Ledger
from autoscaling.profile import ProfileSet, capacity_at_slo, load_profiles
from autoscaling.simulate._controller import POLICIES, Deployment, PolicyName, RayKnobs
from autoscaling.simulate._engine import Engine
from autoscaling.simulate._garden import ModelRun
from autoscaling.simulate._mix import assign_domains, default_mix, validate_mix
from autoscaling.simulate._partition import partition
from autoscaling.simulate._replica import Job
from autoscaling.simulate._report import summarize
from autoscaling.simulate._trace import MOONCAKE_BLOCK_TOKENS, Request
from cluster.config import GardenConfig, load_config
from router.virtual import virtual_policies

__all__ = ["REPLICA_ROUTERS", "ReplicaRouter", "simulate", "with_bounds"]

#: ``models[].replica_router``'s values, which ``simulate(replica_router=)`` may force.
ReplicaRouter = Literal["power_of_two", "prefix_aware"]
REPLICA_ROUTERS: tuple[ReplicaRouter, ...] = ("power_of_two", "prefix_aware")


TargetsFrom = Literal["profile", "config"]


def _targets(
    garden: GardenConfig, profiles: ProfileSet, requests: Sequence[Request], source: TargetsFrom
) -> dict[str, float]:
    if source == "config":
        return {m.name: m.autoscaling.target_ongoing_requests for m in garden.chat_models}
    # Each model's batch capacity at its SLO for the trace's mean request.
    n = len(requests)
    mean_in = sum(r.input_tokens for r in requests) / n
    mean_out = sum(r.output_tokens for r in requests) / n
    return {
        m.name: capacity_at_slo(profiles.for_model(m.name), m.slo.ttft_ms / 1000, mean_in, mean_out)
        for m in garden.chat_models
    }


def _check_budget(garden: GardenConfig, budget: float | None) -> None:
    if budget is None:
        return
    floor = sum(m.cost_per_hour * m.autoscaling.min_replicas for m in garden.chat_models)
    if not budget >= floor:
        raise ValueError(
            f"budget {budget:g}/h is below the cost of every model's min_replicas ({floor:g}/h)"
        )


def with_bounds(
    garden: GardenConfig, min_replicas: int | None = None, max_replicas: int | None = None
) -> GardenConfig:
    """``garden`` with every model's replica bounds overridden.

    ``max_replicas`` applies to every model, ``min_replicas`` to the
    specialists (the generalist keeps at least 1: it is every request's
    fallback). Each model then starts at its new minimum. ValueError when a
    minimum would pass a maximum.
    """
    if min_replicas is None and max_replicas is None:
        return garden
    models = []
    for m in garden.models:
        if not m.chats:  # the simulator replays generation only
            models.append(m)
            continue
        lo, hi = m.autoscaling.min_replicas, m.autoscaling.max_replicas
        if min_replicas is not None:
            lo = min_replicas if m.role == "specialist" else max(1, min_replicas)
        if max_replicas is not None:
            hi = max_replicas
        if lo > hi:
            raise ValueError(
                f"model {m.name!r}: min_replicas {lo} is above max_replicas {hi}; "
                "pass a larger --max-replicas"
            )
        scaling = m.autoscaling.model_copy(
            update={"min_replicas": lo, "max_replicas": hi, "initial_replicas": None}
        )
        models.append(m.model_copy(update={"autoscaling": scaling}))
    return GardenConfig.model_validate(
        {**garden.model_dump(mode="json"), "models": [m.model_dump(mode="json") for m in models]}
    )


def _runs(
    garden: GardenConfig,
    profiles: ProfileSet,
    policy: PolicyName,
    target_ongoing_requests: Mapping[str, float],
    allowed: dict[str, int] | None,
    knobs: RayKnobs | None = None,
) -> dict[str, ModelRun]:
    def allowance(ctx: Any) -> int | None:
        return None if allowed is None else allowed.get(ctx.deployment_name)

    def spilled(model: str) -> float:
        # The router's live count, which the live garden publishes every refresh.
        return float(runs[model].spilled)

    runs: dict[str, ModelRun] = {}
    ledger = Ledger(Budget())  # the replay's coordinator, as the controller's is live
    for spec in garden.chat_models:
        dep = Deployment(
            garden,
            spec,
            policy,
            target_ongoing_requests[spec.name],
            allowance if allowed is not None else None,
            spilled,
            knobs,
            ledger,
            profiles.for_model(spec.name),
        )
        runs[spec.name] = ModelRun(
            spec, profiles.for_model(spec.name), dep, garden.autoscaling.look_back_period_s
        )
        runs[spec.name].target = dep.start_replicas
    return runs


def _replay(
    garden: GardenConfig,
    runs: dict[str, ModelRun],
    jobs: list[Job],
    horizon_s: float,
    *,
    autoscale: bool,
    budget: tuple[float | None, float | None],
    allowed: dict[str, int] | None,
    control_period_s: float,
    series_step_s: float,
) -> Engine:
    policies = virtual_policies(garden)
    policy = policies.get("auto") or next(iter(policies.values()))
    # An adapter's requests run on its base model's replicas: replay them there.
    routing = dataclasses.replace(policy, owners=garden.domain_models())
    engine = Engine(
        runs,
        routing,
        horizon_s,
        autoscale=autoscale,
        budget=budget,
        allowed=allowed,
        control_period_s=control_period_s,
        metrics_interval_s=garden.autoscaling.metrics_interval_s,
        look_back_s=garden.autoscaling.look_back_period_s,
        series_step_s=series_step_s,
    )
    engine.run(jobs)
    return engine


def fixed_targets(peaks: Mapping[str, float], runs: Mapping[str, ModelRun]) -> dict[str, int]:
    """Replicas each model's peak look-back demand needs, within its bounds."""
    out: dict[str, int] = {}
    for name, run in runs.items():
        dep = run.deployment
        need = math.ceil(peaks[name] / dep.target_ongoing_requests - 1e-9)
        out[name] = max(dep.min_replicas, min(dep.max_replicas, need))
    return out


def _partitioned(
    garden: GardenConfig,
    runs: Mapping[str, ModelRun],
    peaks: Mapping[str, float],
    budget: float | None,
) -> GardenConfig:
    """``garden`` with each model's ``max_replicas`` its share of ``budget`` (:func:`partition`)."""
    if budget is None:
        raise ValueError(
            "static-partition splits a budget: pass --budget or set budget.max_cost_per_hour"
        )
    needs = {
        n: math.ceil(peaks[n] / r.deployment.target_ongoing_requests - 1e-9)
        for n, r in runs.items()
    }
    maxes = partition(
        needs,
        {m.name: m.cost_per_hour for m in garden.chat_models},
        {m.name: m.autoscaling.min_replicas for m in garden.chat_models},
        budget,
        {m.name: m.autoscaling.max_replicas for m in garden.chat_models},
    )
    data = garden.model_dump(mode="json")
    for model in data["models"]:
        model["autoscaling"].update(max_replicas=maxes[model["name"]], initial_replicas=None)
    return GardenConfig.model_validate(data)


def simulate(
    requests: Sequence[Request],
    garden: GardenConfig | None = None,
    profiles: ProfileSet | None = None,
    *,
    policy: PolicyName = "garden",
    budget: float | None = None,
    seed: int = 0,
    mix: Mapping[str, float] | None = None,
    targets_from: TargetsFrom = "profile",
    control_period_s: float = 1.0,
    series_step_s: float = 10.0,
    min_replicas: int | None = None,
    max_replicas: int | None = None,
    knobs: RayKnobs | None = None,
    tune_against: float | None = None,
    prefix_cache: bool = False,
    replica_router: ReplicaRouter | None = None,
) -> dict[str, Any]:
    """Replay ``requests`` through ``garden`` (default: the embedded one) under ``policy``.

    With ``prefix_cache`` each replica keeps a prefix cache of the requests'
    blocks (Mooncake's ``hash_ids``, :data:`MOONCAKE_BLOCK_TOKENS` tokens
    each), and a prompt prefills only what is not cached; off by default,
    so that replays without it give the figures they always gave.
    ``replica_router`` overrides every model's ``replica_router``
    (``prefix_aware``: replicas picked as Ray Serve LLM's prefix-aware
    router picks them).

    ``budget`` overrides ``budget.max_cost_per_hour``; only the ``garden``
    policy is bound by it (the baselines know no budget, and the report
    shows what they spend). Each request gets a domain from ``mix`` (default:
    uniform over the specialists' domains and ``general``) drawn with
    ``seed``. Every policy targets the same requests per replica: the
    profile's batch capacity at the model's TTFT SLO for the trace's mean
    request (``targets_from="profile"``), or the config's
    ``target_ongoing_requests`` (``targets_from="config"``). The same inputs always
    give the same dict.

    ``static-partition`` is Ray's policy with each model's ``max_replicas``
    its share of the budget in proportion to its peak demand
    (:func:`~autoscaling.simulate._partition.partition`), as a Ray user under
    a cost ceiling would set them; it needs a budget.

    ``min_replicas`` / ``max_replicas`` override every model's bounds
    (:func:`with_bounds`). ``knobs`` sets Ray's own delays and target for
    ``ray-default``. ``ray-tuned`` is Ray's policy at the best point of
    :data:`~autoscaling.simulate._tuned.GRID`: the cheapest whose sized
    attainment reaches ``tune_against`` (default: the garden policy's on
    the same replay), else the one with the highest attainment.
    """
    if policy not in POLICIES:
        raise ValueError(f"unknown policy {policy!r}; expected one of {list(POLICIES)}")
    if not requests:
        raise ValueError("the trace has no request")
    if replica_router not in (None, *REPLICA_ROUTERS):
        raise ValueError(
            f"unknown replica_router {replica_router!r}; expected one of {list(REPLICA_ROUTERS)}"
        )
    if knobs is not None and policy != "ray-default":
        raise ValueError(f"knobs tune Ray's policy (ray-default), not {policy!r}")
    garden = garden if garden is not None else load_config(None)
    garden = with_bounds(garden, min_replicas, max_replicas)
    if policy == "ray-tuned":
        from autoscaling.simulate._tuned import tune_ray

        common: dict[str, Any] = {
            "budget": budget,
            "seed": seed,
            "mix": mix,
            "targets_from": targets_from,
            "control_period_s": control_period_s,
            "series_step_s": series_step_s,
        }
        return tune_ray(requests, garden, profiles, tune_against, **common)
    profiles = profiles if profiles is not None else load_profiles(None)
    cost_cap = budget if budget is not None else garden.budget.max_cost_per_hour
    _check_budget(garden, cost_cap)
    weights = validate_mix(mix if mix is not None else default_mix(garden), garden)
    domains = assign_domains(len(requests), weights, seed)
    ordered = sorted(range(len(requests)), key=lambda i: requests[i].arrival_s)

    def jobs() -> list[Job]:
        return [
            Job(
                i,
                requests[i].arrival_s,
                requests[i].input_tokens,
                requests[i].output_tokens,
                domains[i],
                blocks=requests[i].blocks if prefix_cache else (),
            )
            for i in ordered
        ]

    def replicas(runs: dict[str, ModelRun]) -> dict[str, ModelRun]:
        for run in runs.values():
            run.block_tokens = MOONCAKE_BLOCK_TOKENS if prefix_cache else None
            run.prefix_aware = (replica_router or run.spec.replica_router) == "prefix_aware"
        return runs

    per_replica = _targets(garden, profiles, requests, targets_from)
    horizon = max(r.arrival_s for r in requests)
    caps = (cost_cap, garden.budget.max_gpus) if policy == "garden" else (None, None)
    allowed: dict[str, int] | None = {} if caps != (None, None) else None
    timing = {"control_period_s": control_period_s, "series_step_s": series_step_s}
    runs = replicas(_runs(garden, profiles, policy, per_replica, allowed, knobs))
    if policy in ("static-peak", "static-partition"):
        for run in runs.values():
            run.target = run.deployment.max_replicas
        _replay(garden, runs, jobs(), horizon, autoscale=False, budget=caps, allowed=None, **timing)
        peaks = {n: r.peak_demand for n, r in runs.items()}
        if policy == "static-partition":
            garden = _partitioned(garden, runs, peaks, cost_cap)
            runs = replicas(_runs(garden, profiles, policy, per_replica, None))
        else:
            fixed = fixed_targets(peaks, runs)
            runs = replicas(_runs(garden, profiles, policy, per_replica, None))
            for name, run in runs.items():
                run.target = fixed[name]
    replayed = jobs()
    engine = _replay(
        garden,
        runs,
        replayed,
        horizon,
        autoscale=policy != "static-peak",
        budget=caps,
        allowed=allowed,
        **timing,
    )
    owners = garden.domain_models()
    result = summarize(
        replayed,
        runs,
        owners=owners,
        max_cost_rate=engine.max_cost_rate,
        series=engine.series,
    )
    head: dict[str, Any] = {
        "policy": policy,
        "seed": seed,
        "budget": cost_cap,
        "horizon_s": round(horizon, 3),
        "bounds": {
            m.name: [m.autoscaling.min_replicas, m.autoscaling.max_replicas]
            for m in garden.chat_models
        },
    }
    if knobs is not None:
        head["knobs"] = dataclasses.asdict(knobs)
    if prefix_cache or replica_router is not None:
        prompt = sum(j.input_tokens for j in replayed if j.first_token_s is not None)
        cached = sum(j.cached_tokens for j in replayed if j.first_token_s is not None)
        head["prefix_cache"] = {
            "on": prefix_cache,
            "block_tokens": MOONCAKE_BLOCK_TOKENS if prefix_cache else None,
            "replica_router": {n: "prefix_aware" if r.prefix_aware else "power_of_two"
                               for n, r in runs.items()},
            "cached_prompt_share": round(cached / prompt, 4) if prompt else 0.0,
        }  # fmt: skip
    return {**head, **result}
