"""The fault tests' gardens: each test module runs its own Ray cluster of several nodes.

These tests kill a node or the GCS, so they cannot share the session
garden; they run as their own pytest session (``make test-faults``), after
the main suite has taken its garden down (both want Ray's default GCS
port). Each module starts a :class:`tests._cluster.LocalCluster`, runs the
real ``garden up --address`` against it, puts Locust load on it with
``garden loadtest`` and, at the end, stops everything and checks that no
process of the cluster or the garden is left.

The garden is the embedded default cut to what the faults need: the
generalist and the routers stay on the head (custom resource ``head``),
and the medicine specialist goes to the node that the test kills (custom
resource ``spare``).
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from cluster.config import load_config
from cluster.processes import garden_processes
from tests._cluster import LocalCluster, NodeSpec
from tests._redis import free_port

#: The key the fault gardens require, in the variable the config names.
FAULT_KEY = "sk-faults"
FAULT_KEYS_ENV = "GARDEN_FAULT_API_KEYS"
#: The specialist placed on the node that fails.
SPECIALIST = "medicine"

#: The head runs the routers and the generalist; the spare node the specialist.
HEAD = NodeSpec(cpus=2, resources={"head": 16})
SPARE = NodeSpec(cpus=1, resources={"spare": 16})


def garden_bin() -> str:
    """The ``garden`` executable of this interpreter's environment."""
    return str(Path(sys.executable).with_name("garden"))


def fault_config(path: Path, *, port: int, metrics_port: int) -> Path:
    """Write the fault garden's garden.yaml at ``path`` and return it."""
    data = load_config(None).model_dump(mode="json", exclude_unset=False)
    data["models"] = [m for m in data["models"] if m["name"] in (SPECIALIST, "generalist")]
    for model in data["models"]:
        pool = "spare" if model["name"] == SPECIALIST else "head"
        model["resources"] = {**model["resources"], "custom": {pool: 1}}
        model["autoscaling"].update(min_replicas=1, max_replicas=1)
    router = data["router"]
    router.update(
        port=port,
        proxy_location="HeadOnly",  # one machine: every node's proxy would want this port
        custom_resources={"head": 1},
        thresholds={SPECIALIST: router["thresholds"][SPECIALIST]},
        auth={"api_keys_env": FAULT_KEYS_ENV},
    )
    data["telemetry"] = {"metrics_port": metrics_port}
    data["autoscaling"]["policy"] = "ray-default"
    path.write_text(yaml.safe_dump(data))
    return path


@dataclass
class FaultGarden:
    """A garden on a :class:`LocalCluster`, driven through the ``garden`` CLI."""

    cluster: LocalCluster
    config: Path
    env: dict[str, str]
    port: int
    loads: list[subprocess.Popen[str]] = field(default_factory=list)

    @property
    def endpoint(self) -> str:
        """The OpenAI-compatible base URL."""
        return f"http://127.0.0.1:{self.port}/v1"

    def garden(self, *args: str, timeout_s: float = 600) -> subprocess.CompletedProcess[str]:
        """Run ``garden ARGS`` with this garden's environment (and its config)."""
        return subprocess.run(
            [garden_bin(), *args],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout_s,
            check=False,
        )

    def loadtest(self, seconds: int, out: Path, *, users: int = 6) -> subprocess.Popen[str]:
        """Start ``garden loadtest`` (Locust, ``auto``, medicine-heavy) in the background."""
        load = subprocess.Popen(
            [
                garden_bin(),
                "loadtest",
                "--config",
                str(self.config),
                "--users",
                str(users),
                "--duration",
                f"{seconds}s",
                "--model",
                "auto",
                "--weights",
                f"{SPECIALIST}=3,general=1",
                "--max-tokens",
                "24",
                "--out",
                str(out),
                "--json",
            ],
            env=self.env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.loads.append(load)
        return load

    def served_by(self, model: str, prompt: str, *, max_tokens: int = 8) -> httpx.Response:
        """One non-streamed chat request for ``model``, without retries."""
        return httpx.post(
            f"{self.endpoint}/chat/completions",
            headers={"authorization": f"Bearer {FAULT_KEY}"},
            json={
                "model": model,
                "messages": [{"role": "user", "content": prompt}],
                "max_tokens": max_tokens,
            },
            timeout=60,
        )

    def model_serving(self, model: str, prompt: str) -> str | None:
        """The model that served one request for ``model`` (None: it failed or timed out)."""
        try:
            reply = self.served_by(model, prompt)
            return str(reply.json().get("model")) if reply.status_code == 200 else None
        except (httpx.HTTPError, ValueError):
            return None

    def wait_for(self, what: str, check: Any, timeout_s: float, every_s: float = 1.0) -> float:
        """Seconds until ``check()`` is true; fails the test after ``timeout_s``."""
        started = time.monotonic()
        while time.monotonic() - started < timeout_s:
            if check():
                return time.monotonic() - started
            time.sleep(every_s)
        pytest.fail(f"{what}: not within {timeout_s:.0f} s")


def records_of(out: Path) -> list[dict[str, Any]]:
    """The per-request records a ``garden loadtest`` wrote to ``out``."""
    from loadtest.summary import read_records

    return [r for r in read_records(out / "records.jsonl") if "ok" in r]


def finish(load: subprocess.Popen[str], timeout_s: float) -> dict[str, Any]:
    """Wait for a ``garden loadtest`` and return its summary (its ``--json`` output)."""
    try:
        stdout, stderr = load.communicate(timeout=timeout_s)
    finally:
        if load.poll() is None:
            load.kill()
            load.communicate()
    lines = [line for line in stdout.splitlines() if line.startswith("{")]
    assert lines, f"garden loadtest printed no summary (exit {load.returncode}):\n{stderr[-2000:]}"
    return dict(json.loads(lines[-1]))


@contextlib.contextmanager
def fault_garden(
    run_dir: Path, *, cluster_env: dict[str, str] | None = None, spare: bool = True
) -> Iterator[FaultGarden]:
    """A head (and, with ``spare``, the spare node), and the fault garden up on them.

    ``cluster_env`` goes into every node's environment. On exit: ``garden
    down``, the cluster stopped, and a check that none of its processes,
    nor any engine of the garden, is left.
    """
    from cluster.config import load_config as load

    port, metrics_port = free_port(), free_port()
    config = fault_config(run_dir / "garden.yaml", port=port, metrics_port=metrics_port)
    garden_cfg = load(str(config))
    env = {
        **os.environ,
        "GARDEN_RUN_DIR": str(run_dir / "run"),
        FAULT_KEYS_ENV: FAULT_KEY,
        "RAY_AUTH_MODE": os.environ.get("RAY_AUTH_MODE", "disabled"),
    }
    cluster = LocalCluster(
        run_dir / "nodes", env={**garden_cfg.router.serve_env(), **(cluster_env or {})}
    )
    handle = FaultGarden(cluster, config, env, port)
    try:
        cluster.start_head(HEAD, metrics_port=metrics_port)
        if spare:
            cluster.start_node("spare", SPARE)
        up = handle.garden(
            "up", "--config", str(config), "--address", cluster.address, timeout_s=900
        )
        assert up.returncode == 0, f"garden up failed:\n{up.stdout[-3000:]}\n{up.stderr[-3000:]}"
        yield handle
    finally:
        for load in handle.loads:  # a test that failed mid-load leaves its Locust
            if load.poll() is None:
                load.kill()
                load.communicate()
        down = handle.garden("down", "--drain-timeout", "0", timeout_s=300)
        survivors = cluster.stop()
        leftover = [p.pid for p in garden_processes(garden_cfg.name)]
        assert down.returncode == 0, f"garden down failed:\n{down.stderr[-3000:]}"
        assert not survivors and not leftover, (
            f"processes outlived the fault garden: {survivors or leftover}"
        )
