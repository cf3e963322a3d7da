"""The budget holds in Ray Serve's real controller: the arbiter grants the one affordable replica.

Two small Serve applications beside the session garden run plain sleeping
deployments (no vLLM, so they start in seconds) under ``GardenPolicy`` with
a shared budget (the ledger is keyed by ``policy_kwargs.app``). Both are
loaded past what the budget affords; the controller may grow only the
higher-priority one, never past the budget, and the other is published as
capped for the router.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest
from ray import serve

from autoscaling.policy import POLICY_IMPORT_PATH
from autoscaling.signals import read_capped
from tests.conftest import RunningGarden

pytestmark = pytest.mark.integration

LEDGER = "budget-probe"
COST, BUDGET = 1.0, 3.0  # two minimum replicas, and one more that fits


def _deployment(model: str, priority: int) -> Any:
    # Defined in a function so that Serve pickles the class by value.
    @serve.deployment(
        name=model,
        max_ongoing_requests=8,
        ray_actor_options={"num_cpus": 0},
        autoscaling_config={
            "min_replicas": 1,
            "max_replicas": 3,
            "initial_replicas": 1,
            "target_ongoing_requests": 1,
            "upscale_delay_s": 0.0,
            "downscale_delay_s": 0.0,
            "look_back_period_s": 2,
            "metrics_interval_s": 0.5,
            "policy": {
                "policy_function": POLICY_IMPORT_PATH,
                "policy_kwargs": {
                    "target_ongoing_requests": 1,
                    "min_replicas": 1,
                    "max_replicas": 3,
                    "app": LEDGER,
                    "model": model,
                    "cost_per_hour": COST,
                    "priority": priority,
                    "max_cost_per_hour": BUDGET,
                },
            },
        },
    )
    class Busy:
        async def __call__(self) -> str:
            await asyncio.sleep(2)
            return model

    return Busy.bind()


def _replicas(app: str) -> int:
    from ray.serve._private.common import ReplicaState

    deployments = serve.status().applications[app].deployments.values()
    return sum(
        n for d in deployments for state, n in d.replica_states.items()
        if state != ReplicaState.STOPPING
    )  # fmt: skip


def test_the_budget_caps_growth_and_the_capped_model_is_published(garden: RunningGarden) -> None:
    apps = {"budget-hi": ("hi", 1), "budget-lo": ("lo", 0)}
    for app, (model, priority) in apps.items():
        serve.run(_deployment(model, priority), name=app, route_prefix=f"/{app}")
    handles = {app: serve.get_app_handle(app) for app in apps}
    seen: list[dict[str, int]] = []
    capped: list[frozenset[str]] = []

    async def load() -> None:
        stop = asyncio.Event()

        async def client(app: str) -> None:
            while not stop.is_set():
                await handles[app].remote()

        tasks = [asyncio.create_task(client(app)) for app in apps for _ in range(6)]
        deadline = time.monotonic() + 90
        try:
            while time.monotonic() < deadline:
                seen.append({app: await asyncio.to_thread(_replicas, app) for app in apps})
                if seen[-1]["budget-hi"] == 2 and "lo" in read_capped(LEDGER):
                    break
                await asyncio.sleep(0.5)
            await asyncio.sleep(5)  # and it stays so under the same load
            seen.append({app: await asyncio.to_thread(_replicas, app) for app in apps})
            capped.append(read_capped(LEDGER))
        finally:
            stop.set()
            await asyncio.gather(*tasks, return_exceptions=True)

    try:
        asyncio.run(load())
    finally:
        for app in apps:
            handles[app].shutdown()  # its metrics pusher would outlive the garden
            serve.delete(app)
    # Every replica held (starting or running) costs money: never above the budget.
    assert max(sum(s.values()) for s in seen) * COST <= BUDGET, seen
    assert seen[-1] == {"budget-hi": 2, "budget-lo": 1}, seen
    # Both still want 3 replicas; the router would spill the low-priority one's overflow.
    assert capped == [frozenset({"hi", "lo"})]
