"""A Ray cluster of several nodes on this machine, for the fault tests (``tests/faults``).

Each node is its own ``ray start`` (the head with ``--head``, the others
with ``--address``), as on separate machines, and every process of a node
(its raylet, its workers, the Serve replicas among them and the vLLM
engines those start) carries :data:`~cluster.processes.CLUSTER_MARKER` set
to that node's own value. So a node can be killed whole, as a machine that
fails would be, and the GCS alone, as KubeRay's GCS fault tolerance tests
do; and at the end nothing of the cluster is left running.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

import psutil

from cluster._ray import ray_cli
from cluster.processes import CLUSTER_MARKER, cluster_processes, kill_tree

__all__ = ["GCS_PORT", "LocalCluster", "NodeSpec"]

#: The head's GCS port: Ray's default, which `garden up --address auto` finds.
GCS_PORT = 6379


@dataclass(frozen=True)
class NodeSpec:
    """One node: its logical CPUs and custom resources (``ray start --resources``)."""

    cpus: int
    resources: dict[str, float] = field(default_factory=dict)


@dataclass
class _Gcs:
    cmdline: list[str]
    environ: dict[str, str]
    cwd: str


@dataclass
class LocalCluster:
    """Nodes started with ``ray start`` on this machine; ``stop`` ends them all.

    ``env`` is added to every node's environment (Ray Serve's switches,
    ``RAY_REDIS_ADDRESS`` for GCS fault tolerance).
    """

    run_dir: Path
    env: dict[str, str] = field(default_factory=dict)
    nodes: dict[str, NodeSpec] = field(default_factory=dict)
    _gcs: _Gcs | None = None
    _restarted: list[subprocess.Popen[bytes]] = field(default_factory=list)

    @property
    def address(self) -> str:
        """The head's GCS address, for ``garden up --address``."""
        return f"127.0.0.1:{GCS_PORT}"

    def marker(self, name: str) -> str:
        """The value of :data:`CLUSTER_MARKER` in node ``name``'s processes."""
        return str(self.run_dir / name)

    def _ray_start(self, name: str, args: list[str]) -> None:
        spec = self.nodes[name]
        log = self.run_dir / f"{name}.log"
        log.parent.mkdir(parents=True, exist_ok=True)
        env = {
            **os.environ,
            "RAY_USAGE_STATS_ENABLED": "0",
            "RAY_AUTH_MODE": os.environ.get("RAY_AUTH_MODE", "disabled"),
            **self.env,
            CLUSTER_MARKER: self.marker(name),
        }
        cmd = [
            ray_cli(),
            "start",
            *args,
            f"--num-cpus={spec.cpus}",
            f"--resources={json.dumps(spec.resources)}",
            "--disable-usage-stats",
        ]
        with log.open("a") as out:
            done = subprocess.run(
                cmd, stdout=out, stderr=subprocess.STDOUT, env=env, check=False, timeout=180
            )
        if done.returncode != 0:
            tail = "\n".join(log.read_text(errors="replace").splitlines()[-10:])
            raise RuntimeError(f"`ray start` of node {name!r} failed:\n{tail}")

    def start_head(self, spec: NodeSpec, *, metrics_port: int) -> None:
        """Start the head node (GCS on :data:`GCS_PORT`) and wait for it to answer."""
        self.nodes["head"] = spec
        self._ray_start(
            "head",
            [
                "--head",
                f"--port={GCS_PORT}",
                "--include-dashboard=false",
                f"--metrics-export-port={metrics_port}",
            ],
        )
        _wait_port(GCS_PORT, 60)

    def start_node(self, name: str, spec: NodeSpec | None = None) -> None:
        """Start (or start again) worker node ``name``, joining the head."""
        if spec is not None:
            self.nodes[name] = spec
        self._ray_start(name, [f"--address={self.address}"])

    def processes(self, name: str) -> list[psutil.Process]:
        """Live processes of node ``name``."""
        return cluster_processes(self.marker(name))

    def kill_node(self, name: str) -> int:
        """SIGKILL every process of node ``name`` at once; return how many there were."""
        procs = self.processes(name)
        survivors = kill_tree(procs, timeout=30)
        if survivors:
            raise RuntimeError(f"node {name!r} outlived SIGKILL: {[p.pid for p in survivors]}")
        return len(procs)

    def gcs_process(self) -> psutil.Process:
        """The head's ``gcs_server``."""
        for proc in self.processes("head"):
            try:
                if proc.name() == "gcs_server":
                    return proc
            except psutil.NoSuchProcess:
                continue
        raise RuntimeError("the head has no gcs_server running")

    def kill_gcs(self) -> None:
        """SIGKILL the head's GCS, remembering how it was started."""
        proc = self.gcs_process()
        self._gcs = _Gcs(proc.cmdline(), proc.environ(), proc.cwd())
        proc.kill()
        proc.wait(30)

    def restart_gcs(self) -> None:
        """Start the GCS again exactly as it was (its command, environment and directory).

        This is what a restarted head pod does under KubeRay's GCS fault
        tolerance: a new GCS with the same Redis and session, which the
        surviving raylets and workers reconnect to.
        """
        if self._gcs is None:
            raise RuntimeError("restart_gcs() before kill_gcs()")
        restarted = subprocess.Popen(
            self._gcs.cmdline,
            env=self._gcs.environ,
            cwd=self._gcs.cwd,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        self._restarted.append(restarted)
        _wait_port(GCS_PORT, 60)

    def stop(self) -> list[int]:
        """SIGKILL every process of every node (by marker only); return the survivors.

        Not ``ray stop``, which would stop any other Ray cluster on this
        machine too. Raises when the GCS port is still taken afterwards.
        """
        procs = [p for name in self.nodes for p in self.processes(name)]
        survivors = [p.pid for p in kill_tree(procs, timeout=30)]
        for gcs in self._restarted:
            gcs.wait(30)  # killed above (it carries the head's marker); reaped here
        deadline = time.monotonic() + 15
        while True:
            try:
                socket.create_connection(("127.0.0.1", GCS_PORT), timeout=0.5).close()
            except OSError:
                return survivors
            if time.monotonic() > deadline:
                raise RuntimeError(f"port {GCS_PORT} is still in use after the cluster stopped")
            time.sleep(0.2)


def _wait_port(port: int, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return
        except OSError:
            if time.monotonic() > deadline:
                raise RuntimeError(
                    f"nothing listens on port {port} after {timeout_s:.0f} s"
                ) from None
            time.sleep(0.2)
