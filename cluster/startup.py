"""Where each model replica is in its start: placing, loading weights, engine up, healthy.

Serve's controller tells two of the four stages. A replica it has decided to
add but whose actor is not constructed yet (Serve's ``PENDING_ALLOCATION``:
no ``pid`` in its details) is **placing**: waiting for a node with its
resources, for the worker to start, and for the actor's constructor, which
unpickles the deployment class and so imports Ray Serve LLM, vLLM and torch
(most of a CPU replica's start). A ``RUNNING`` replica is **healthy**: the
deployment's constructor returned and its first health check passed.

In between runs the deployment's constructor, where Ray Serve LLM starts the
vLLM engine: it fetches and loads the weights, sizes the KV cache and warms
up (CUDA graphs on GPUs). That is **loading weights**, until the replica
reports its engine up in the garden's shared store
(:func:`report_engine_up`, from ``deployments``' engine-ready hook); from then
until Serve counts it running (its ASGI app built, the first health check
passed) the replica is **engine up**.

Pure but for the store it is handed: ``garden up``'s bars and ``garden
status`` read the stages with :func:`stage_counts`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from enum import IntEnum
from typing import Any

from cluster.store import SharedStore

__all__ = [
    "ENGINE_UP_TTL_S",
    "Stage",
    "engine_up_prefix",
    "engine_up_replicas",
    "replica_stage",
    "report_engine_up",
    "stage_counts",
    "status_text",
]

#: Seconds a replica's engine-up report lives: far beyond any replica's
#: start, after which only Serve's own state (RUNNING) matters.
ENGINE_UP_TTL_S = 3600.0

#: Replica states in which a replica is on its way up (Serve's ``ReplicaState``).
_STARTING = frozenset({"STARTING", "UPDATING", "RECOVERING"})


class Stage(IntEnum):
    """A replica's stage; the value is how many of the three steps up it has taken."""

    PLACING = 0
    LOADING_WEIGHTS = 1
    ENGINE_UP = 2
    HEALTHY = 3

    @property
    def label(self) -> str:
        """The stage as ``garden up`` prints it: ``"loading weights"``."""
        return self.name.lower().replace("_", " ")


def engine_up_prefix(app: str, deployment: str | None = None) -> str:
    """The store key prefix of ``app``'s engine-up reports (of one deployment's, if given)."""
    return f"startup/{app}/" if deployment is None else f"startup/{app}/{deployment}/"


def report_engine_up(
    store: SharedStore, app: str, deployment: str, replica: str, *, at: float
) -> None:
    """Record that ``replica`` (Serve's replica id) of ``deployment`` has its engine up."""
    store.put(engine_up_prefix(app, deployment) + replica, repr(at), ttl_s=ENGINE_UP_TTL_S)


def engine_up_replicas(store: SharedStore, app: str, deployment: str) -> frozenset[str]:
    """The replica ids of ``deployment`` whose engine-up report is live."""
    prefix = engine_up_prefix(app, deployment)
    return frozenset(key.removeprefix(prefix) for key in store.items(prefix))


def status_text(value: Any) -> str:
    """A status or state of Serve's details as text (they hold Serve's str enums or values)."""
    return str(getattr(value, "value", value))


def replica_stage(replica: Mapping[str, Any], engine_up: bool) -> Stage | None:
    """The stage of one replica of Serve's details (None: it is stopping, not starting)."""
    state = status_text(replica.get("state"))
    if state == "RUNNING":
        return Stage.HEALTHY
    if state not in _STARTING:
        return None
    if replica.get("pid") is None:
        return Stage.PLACING
    return Stage.ENGINE_UP if engine_up else Stage.LOADING_WEIGHTS


def stage_counts(deployment: Mapping[str, Any], engine_up: Iterable[str] = ()) -> dict[Stage, int]:
    """Replicas of one deployment of Serve's details at each stage.

    ``engine_up``: the replica ids that reported their engine up. Replicas
    the controller wants (``target_num_replicas``) but does not list yet are
    placing too.
    """
    up = frozenset(engine_up)
    counts = dict.fromkeys(Stage, 0)
    for replica in deployment.get("replicas", []):
        stage = replica_stage(replica, str(replica.get("replica_id")) in up)
        if stage is not None:
            counts[stage] += 1
    unlisted = int(deployment.get("target_num_replicas") or 0) - sum(counts.values())
    counts[Stage.PLACING] += max(0, unlisted)
    return counts
