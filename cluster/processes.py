"""Find and kill the processes of a garden, orphaned vLLM engines included.

vLLM's ``VLLM::EngineCore`` and ``VLLM::Worker`` processes can outlive a
replica that dies or a Ray that is stopped abruptly; they ignore SIGTERM,
spin a core and keep their memory. Every model replica carries the
``MODEL_GARDEN_APP`` environment marker (see ``deployments.model``), which its
engine processes inherit, so they can be found even after being reparented.

A local Ray the garden starts carries ``MODEL_GARDEN_CLUSTER`` in every
process, for the same reason: Ray Serve's HAProxy is a child of an actor and
outlives ``ray stop --force``, holding the garden's port.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterable

import psutil

__all__ = [
    "CLUSTER_MARKER",
    "cluster_processes",
    "garden_processes",
    "kill_garden_processes",
    "kill_tree",
    "serve_replicas",
]

_MARKER = "MODEL_GARDEN_APP"
#: Set (to the garden's run directory) in every process of a local Ray the garden started.
CLUSTER_MARKER = "MODEL_GARDEN_CLUSTER"


def _marked(marker: str, value: str | None) -> list[psutil.Process]:
    """Live processes (not this one) whose ``marker`` is set, to ``value`` if given."""
    found = []
    me = os.getpid()
    for proc in psutil.process_iter(["pid"]):
        if proc.pid == me:
            continue
        try:
            seen = proc.environ().get(marker)
        except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
            continue
        if seen is not None and (value is None or seen == value):
            found.append(proc)
    return found


def garden_processes(app: str | None = None) -> list[psutil.Process]:
    """Live processes carrying the garden marker (for ``app``, or any garden)."""
    return _marked(_MARKER, app)


def serve_replicas(app: str, deployment: str) -> list[psutil.Process]:
    """Live Serve replica processes of ``deployment`` in application ``app`` (by their title)."""
    tag = f"ServeReplica:{app}:{deployment}"
    found = []
    for proc in psutil.process_iter(["cmdline"]):
        words = " ".join(proc.info["cmdline"] or ()).split()
        if any(word.endswith(tag) for word in words):
            found.append(proc)
    return found


def cluster_processes(run_dir: str) -> list[psutil.Process]:
    """Live processes of the local Ray cluster a garden started from ``run_dir``."""
    return _marked(CLUSTER_MARKER, run_dir)


def with_descendants(procs: Iterable[psutil.Process]) -> dict[int, psutil.Process]:
    """``procs`` and all their live descendants, by pid."""
    tree: dict[int, psutil.Process] = {}
    for proc in procs:
        try:
            for p in [proc, *proc.children(recursive=True)]:
                tree[p.pid] = p
        except psutil.NoSuchProcess:
            continue
    return tree


def kill_tree(procs: Iterable[psutil.Process], timeout: float = 10.0) -> list[psutil.Process]:
    """SIGKILL ``procs`` and all their descendants; return the ones still alive."""
    targets = with_descendants(procs)
    for p in targets.values():
        try:
            p.kill()
        except psutil.NoSuchProcess:
            continue
    _, alive = psutil.wait_procs(list(targets.values()), timeout=timeout)
    return list(alive)


def kill_garden_processes(app: str | None = None, timeout: float = 10.0) -> list[psutil.Process]:
    """Kill every marked process and its tree; return survivors (should be none)."""
    deadline = time.monotonic() + timeout
    alive = kill_tree(garden_processes(app), timeout=timeout)
    # Engines spawned while we were killing get one more sweep.
    while time.monotonic() < deadline:
        more = garden_processes(app)
        if not more:
            break
        alive = kill_tree(more, timeout=max(0.1, deadline - time.monotonic()))
    survivors: list[psutil.Process] = [p for p in alive if p.is_running()]
    return survivors
