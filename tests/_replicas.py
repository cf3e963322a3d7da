"""Finding and waiting on the model replicas of a running test garden."""

from __future__ import annotations

import time

import psutil
import pytest

from cluster.app import ROUTER_DEPLOYMENT
from cluster.lifecycle import status
from cluster.processes import garden_processes, serve_replicas


def replica_processes(app: str, model: str) -> list[psutil.Process]:
    """Every Serve replica process of ``model`` (not their forked engines)."""
    procs = {p.pid: p for p in garden_processes(app)}
    return [
        p
        for p in procs.values()
        if p.ppid() not in procs and f"ServeReplica:{app}:{model}" in " ".join(p.cmdline())
    ]


def router_processes(app: str) -> list[psutil.Process]:
    """Every Serve replica process of ``app``'s router (it carries no garden marker)."""
    return serve_replicas(app, ROUTER_DEPLOYMENT)


def replica_process(app: str, model: str) -> psutil.Process:
    """The Serve replica process of ``model`` (the first, when it has several)."""
    return replica_processes(app, model)[0]


def wait_until_healthy(app: str, model: str, timeout_s: float = 300) -> None:
    """Wait for ``model``'s deployment to run all its replicas again."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        progress = next(p for p in status(app) if p.name == model)
        if progress.healthy and progress.running == progress.target:
            return
        time.sleep(2)
    pytest.fail(f"the {model} deployment did not recover within {timeout_s} s")


def ensure_running(endpoint: str, app: str, model: str, timeout_s: float = 300) -> None:
    """Bring ``model`` up (a specialist at zero) or keep it up, and wait until it is settled.

    A request named to it waits at Serve's handle until a replica starts;
    that queued request is the demand its policy scales up from zero on, and
    it renews the policy's hold, so the model stays up for the next minutes.
    """
    import openai

    client = openai.OpenAI(base_url=endpoint, api_key="unused", max_retries=0, timeout=timeout_s)
    client.completions.create(model=model, prompt="Hello", max_tokens=1)
    wait_until_healthy(app, model, timeout_s)
