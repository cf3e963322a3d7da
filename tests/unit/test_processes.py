"""Orphaned engine processes: found by the garden marker and killed with their tree."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from cluster.processes import (
    CLUSTER_MARKER,
    cluster_processes,
    garden_processes,
    kill_garden_processes,
    kill_tree,
)

pytestmark = pytest.mark.unit

# A stand-in for an orphaned VLLM::EngineCore: ignores SIGTERM, spins a core,
# and has a child of its own (like its VLLM::Worker).
_STUBBORN = """
import signal, subprocess, sys, time
signal.signal(signal.SIGTERM, signal.SIG_IGN)
child = subprocess.Popen([sys.executable, "-c",
    "import signal\\nsignal.signal(signal.SIGTERM, signal.SIG_IGN)\\nwhile True: pass"])
print(child.pid, flush=True)
while True:
    pass
"""


def test_sigterm_ignoring_engine_tree_is_killed() -> None:
    app = f"test-{os.getpid()}"
    env = {**os.environ, "MODEL_GARDEN_APP": app}
    proc = subprocess.Popen(
        [sys.executable, "-c", _STUBBORN], env=env, stdout=subprocess.PIPE, text=True
    )
    assert proc.stdout is not None
    child_pid = int(proc.stdout.readline())
    try:
        proc.terminate()  # SIGTERM is ignored, as vLLM's engines do
        time.sleep(0.3)
        assert proc.poll() is None
        found = {p.pid for p in garden_processes(app)}
        assert {proc.pid, child_pid} <= found
        assert kill_garden_processes(app) == []
        assert not psutil.pid_exists(child_pid) or psutil.Process(child_pid).status() == "zombie"
        proc.wait(timeout=5)  # psutil already reaped it; this only must not hang
        assert garden_processes(app) == []
    finally:
        for pid in (proc.pid, child_pid):
            if psutil.pid_exists(pid):
                psutil.Process(pid).kill()


def test_other_gardens_are_left_alone() -> None:
    env = {**os.environ, "MODEL_GARDEN_APP": "someone-else"}
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"], env=env)
    try:
        time.sleep(0.2)
        kill_garden_processes(f"test-{os.getpid()}")
        assert proc.poll() is None
    finally:
        proc.kill()
        proc.wait()


def test_processes_of_the_gardens_own_ray_are_found_by_run_dir(tmp_path: Path) -> None:
    # What `ray stop` leaves of a cluster the garden started (Serve's HAProxy):
    # found by the cluster marker, for this run directory only.
    mine, other = str(tmp_path / "run"), str(tmp_path / "other")
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", "import time; time.sleep(30)"],
            env={**os.environ, CLUSTER_MARKER: run_dir},
        )
        for run_dir in (mine, other)
    ]
    try:
        time.sleep(0.2)
        assert [p.pid for p in cluster_processes(mine)] == [procs[0].pid]
        assert kill_tree(cluster_processes(mine)) == []
        assert procs[0].wait(timeout=5) is not None
        assert procs[1].poll() is None
    finally:
        for proc in procs:
            proc.kill()
            proc.wait()
