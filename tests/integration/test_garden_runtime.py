"""The running garden on real Ray: every model deployed, engines marked and lean."""

from __future__ import annotations

import time

import psutil
import pytest

from cluster.lifecycle import read_state, status
from cluster.processes import garden_processes
from cluster.ray_internals import serve_details
from cluster.startup import engine_up_replicas
from cluster.store import RayKVStore
from router._health import running_replicas
from tests._replicas import replica_process, replica_processes, wait_until_healthy
from tests.conftest import RunningGarden

# Replica counts are compared across calls: the cold model must not be scaling.
pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("cold_model_up")]


def test_every_model_and_the_router_are_healthy(garden: RunningGarden) -> None:
    state = read_state()
    assert state is not None and state.endpoint == garden.endpoint
    progress = {p.name: p for p in status(garden.config.name)}
    assert set(progress) == {m.name for m in garden.config.models} | {"router"}
    for p in progress.values():
        floor = 1 if p.name == "router" else garden.config.model(p.name).autoscaling.min_replicas
        assert p.healthy and p.running == p.target >= floor, p
        assert p.stage == "healthy" and p.stages["healthy"] == p.running, p


def test_every_model_replica_reported_its_engine_up(garden: RunningGarden) -> None:
    # garden up's "engine up" stage comes from these reports (cluster.startup).
    app = garden.config.name
    details = serve_details()
    assert details is not None
    for model in garden.config.models:
        deployment = details["applications"][app]["deployments"][model.name]
        running = {r["replica_id"] for r in deployment["replicas"] if r["state"] == "RUNNING"}
        assert running and running <= engine_up_replicas(RayKVStore(), app, model.name), model.name


def test_the_routers_replica_counts_agree_with_serve_status(garden: RunningGarden) -> None:
    # The router reads the controller's raw details (cheaper than serve.status()).
    app = garden.config.name
    seen = running_replicas(app)
    assert seen == {p.name: p.running for p in status(app)}
    assert set(seen) == {m.name for m in garden.config.models} | {"router"}
    assert running_replicas("no-such-app") == {}


def test_each_model_runs_a_replica_and_one_engine_process(garden: RunningGarden) -> None:
    procs = {p.pid: p for p in garden_processes(garden.config.name)}
    replicas = [p for p in procs.values() if p.ppid() not in procs]
    engines = [p for p in procs.values() if p.ppid() in procs]
    # One replica per model, each with a single forked EngineCore that runs its
    # worker in-process: no spawned VLLM::Worker, no third process.
    assert len(replicas) == sum(p.running for p in status(garden.config.name) if p.name != "router")
    assert sorted(e.ppid() for e in engines) == sorted(r.pid for r in replicas)
    assert all(not p.children() for p in engines)


def test_engine_dies_with_its_replica(garden: RunningGarden) -> None:
    """A replica killed abruptly must not leave its SIGTERM-ignoring engine behind."""
    app = garden.config.name
    replica = replica_process(app, "finance")
    engines = replica.children()
    assert len(engines) == 1
    replica.kill()
    _, alive = psutil.wait_procs(engines, timeout=15)
    assert alive == [], f"engine {[p.pid for p in alive]} outlived its replica"
    # Serve replaces the replica; later tests need the whole garden healthy again.
    # Serve reports the death only at its next health check, so wait for the
    # replacement itself first: until then the dead replica still counts as healthy.
    deadline = time.monotonic() + 120
    while not [p for p in replica_processes(app, "finance") if p.pid != replica.pid]:
        assert time.monotonic() < deadline, "Serve did not replace the killed replica"
        time.sleep(0.5)
    wait_until_healthy(app, "finance")


def test_a_replica_counts_tokens_with_its_own_tokenizer(garden: RunningGarden) -> None:
    """What the router asks at a mid-stream switch, against the checkpoint's tokenizer."""
    from ray import serve
    from tokenizers import Tokenizer

    from deployments.tiny import model_path

    text = "A tort is a civil wrong that causes a claimant to suffer loss."
    handle = serve.get_deployment_handle("generalist", garden.config.name)
    counted = handle.count_tokens.remote(text).result(timeout_s=60)
    spec = garden.config.model("generalist")
    tokenizer = Tokenizer.from_file(str(model_path(garden.config, spec) / "tokenizer.json"))
    assert counted == len(tokenizer.encode(text, add_special_tokens=False).ids) > 5
