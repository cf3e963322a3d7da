"""``garden bench overhead`` at a tiny scale beside the session garden, to keep it working."""

from __future__ import annotations

from pathlib import Path

import psutil
import pytest

from cluster.processes import garden_processes
from loadtest.bench.overhead import SETUPS, run_overhead_bench
from tests.conftest import TEST_API_KEY, RunningGarden

# garden_auto routes every domain: the cold model must not start mid-bench.
pytestmark = [pytest.mark.e2e, pytest.mark.usefixtures("cold_model_up")]


def _own_replica(proc: psutil.Process, app: str) -> bool:
    """A replica of the session garden (or its engine): it may scale while the bench runs."""
    mark = f"ServeReplica:{app}:"
    try:
        parent = proc.parent()
        lines = [proc.cmdline(), parent.cmdline() if parent is not None else []]
    except psutil.Error:
        return False
    return any(mark in " ".join(line) for line in lines)


def test_the_five_setups_answer_and_the_baselines_are_gone_after(
    garden: RunningGarden, tmp_path: Path
) -> None:
    app = garden.config.name
    before = {p.pid for p in garden_processes(app)}
    result = run_overhead_bench(
        garden.config,
        garden.endpoint,
        rounds=1,
        concurrency=2,
        tokens=4,
        log_dir=tmp_path,
        api_key=TEST_API_KEY,
        runs=2,
    )
    assert list(result["setups"]) == list(SETUPS) and len(result["runs"]) == 2
    for name, setup in result["setups"].items():
        assert setup["failures"] == 0, (name, setup)
        assert setup["requests"] == 2 and setup["throughput_rps"] > 0
    assert result["setups"]["garden_auto"]["routed_share"] == 1.0
    spreads = [v for r in result["ratios"].values() for v in r.values()]
    assert spreads and all(v is not None and v["min"] <= v["median"] <= v["max"] for v in spreads)
    # vLLM's server, Ray Serve LLM's replicas and their engines were all stopped. Ray
    # Serve LLM's usage-telemetry actor (one per cluster) stays until the garden's down.
    left = [
        p
        for p in garden_processes(app)
        if p.pid not in before and p.is_running() and not _own_replica(p, app)
    ]
    commands = [" ".join(p.cmdline()) for p in left]
    assert all("TelemetryAgent" in c for c in commands), commands
