"""Keeping the router's model states fresh from Ray Serve's controller."""

from __future__ import annotations

import asyncio
import logging

from ray.exceptions import RayError
from ray.serve.exceptions import RayServeException

from autoscaling.signals import publish_spilled, read_capped
from router._state import ModelStates

__all__ = ["refresh", "running_replicas", "watch"]

logger = logging.getLogger("ray.serve")


def running_replicas(app_name: str) -> dict[str, int]:
    """Running replicas of each deployment of ``app_name``, as the controller reports them.

    Blocking (one controller call); run it off the event loop.
    """
    from ray import serve

    app = serve.status().applications.get(app_name)
    if app is None:
        return {}
    from ray.serve._private.common import ReplicaState

    return {
        name: int(d.replica_states.get(ReplicaState.RUNNING, 0))
        for name, d in app.deployments.items()
    }


def _exchange(app_name: str, spilled: dict[str, int]) -> tuple[dict[str, int], frozenset[str]]:
    publish_spilled(app_name, spilled)
    return running_replicas(app_name), read_capped(app_name)


async def refresh(states: ModelStates, app_name: str) -> None:
    """Publish spills; observe running replicas and budget caps. On an error keep the last view."""
    try:
        running, capped = await asyncio.to_thread(_exchange, app_name, states.spilled())
        states.observe(running, capped)
    except (RayError, RayServeException) as err:
        logger.warning("model states not refreshed: %s", err)


async def watch(states: ModelStates, app_name: str, period_s: float) -> None:
    """Refresh ``states`` every ``period_s`` seconds, forever."""
    while True:
        await refresh(states, app_name)
        await asyncio.sleep(period_s)
