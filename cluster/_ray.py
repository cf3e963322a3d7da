"""Starting, joining and stopping the Ray cluster a garden runs on."""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import subprocess
import sys
from collections.abc import Callable, Mapping
from pathlib import Path

from cluster.exceptions import ClusterError, PortInUseError
from cluster.processes import CLUSTER_MARKER

__all__ = [
    "check_port_free",
    "connect",
    "local_ray_alive",
    "ray_cli",
    "start_local_ray",
    "stop_local_ray",
]

_GCS_PORT = 6379


def ray_cli() -> str:
    """The ``ray`` executable of this interpreter's environment."""
    candidate = Path(sys.executable).with_name("ray")
    return str(candidate) if candidate.exists() else "ray"


def check_port_free(host: str, port: int) -> None:
    """Raise :class:`PortInUseError` when a server could not listen on ``host:port``.

    The probe binds as servers do (uvicorn, HAProxy and Ray all set
    ``SO_REUSEADDR``), so connections of a stopped server that linger in
    TIME_WAIT do not count as use; a socket that still listens does.
    """
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError as err:
            raise PortInUseError(host, port) from err


def local_ray_alive() -> bool:
    """True when a Ray head (GCS) answers on this machine's default port."""
    try:
        with socket.create_connection(("127.0.0.1", _GCS_PORT), timeout=1.0):
            return True
    except OSError:
        return False


def _env() -> dict[str, str]:
    # One explicit auth mode for the head and every driver: Ray otherwise
    # decides per process from whether ~/.ray/auth_token happens to exist, and
    # a head and driver that disagree cannot talk. Local gardens default to
    # Ray's `ray start` default (no token); set RAY_AUTH_MODE=token to opt in.
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    env = dict(os.environ)
    env.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    return env


def start_local_ray(
    log_file: Path,
    *,
    metrics_port: int,
    env: Mapping[str, str] | None = None,
    meanwhile: Callable[[], object] | None = None,
) -> str:
    """Start a detached single-node Ray head here; return its address.

    ``env`` is added to the environment of every Ray process (Ray Serve's
    process-wide switches, say). Every process the head starts, and every
    process they start (HAProxy included), carries
    :data:`~cluster.processes.CLUSTER_MARKER`, so that ``garden down`` can
    find any that ``ray stop`` leaves behind.

    ``meanwhile`` runs while Ray boots (``garden up`` imports Ray Serve LLM
    then, which takes as long as Ray's start on a small machine). The
    dashboard is left out: it costs memory and the garden has ``garden
    status``. Ray's metrics agent serves Prometheus on ``metrics_port``.
    Ray's own output goes to ``log_file``.
    """
    try:
        check_port_free("127.0.0.1", _GCS_PORT)
    except PortInUseError as err:
        raise ClusterError(
            f"port {_GCS_PORT} is in use: another Ray cluster runs here. Join it with "
            "`garden up --address auto`, or stop it with `ray stop`."
        ) from err
    try:
        check_port_free("127.0.0.1", metrics_port)
    except PortInUseError as err:
        raise ClusterError(
            f"telemetry.metrics_port={metrics_port} is in use; pick a free port in the config"
        ) from err
    cmd = [
        ray_cli(),
        "start",
        "--head",
        f"--port={_GCS_PORT}",
        "--include-dashboard=false",
        "--disable-usage-stats",
        f"--metrics-export-port={metrics_port}",
    ]
    log_file.parent.mkdir(parents=True, exist_ok=True)
    with log_file.open("w") as log:
        full_env = {**_env(), **(env or {}), CLUSTER_MARKER: str(log_file.parent)}
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=full_env)
        try:
            if meanwhile is not None:
                meanwhile()
        finally:
            returncode = proc.wait()
    if returncode != 0:
        tail = log_file.read_text(errors="replace").strip().splitlines()[-5:]
        raise ClusterError(
            f"`ray start` failed (exit {returncode}); see {log_file}:\n  " + "\n  ".join(tail)
        )
    # "auto" finds this machine's cluster whatever address Ray picked for the node.
    return "auto"


def stop_local_ray(log_file: Path | None = None) -> None:
    """``ray stop --force``: SIGKILL every Ray process of this machine's cluster."""
    out = log_file.open("a") if log_file else subprocess.DEVNULL
    try:
        subprocess.run(
            [ray_cli(), "stop", "--force"],
            stdout=out,
            stderr=subprocess.STDOUT,
            env=_env(),
            check=False,
            timeout=120,
        )
    finally:
        if log_file:
            with contextlib.suppress(AttributeError):
                out.close()  # type: ignore[union-attr]


def connect(address: str) -> None:
    """Connect this process to the Ray cluster at ``address`` as a driver."""
    import ray

    if ray.is_initialized():
        return
    _env()
    try:
        ray.init(
            address=address,
            namespace="serve",
            logging_level=logging.ERROR,
            log_to_driver=False,
            configure_logging=True,
        )
    except (ConnectionError, RuntimeError) as err:
        raise ClusterError(
            f"cannot reach a Ray cluster at {address!r}: {err}. "
            "Is it running? (`garden up` starts one; `ray status` checks one.)"
        ) from err
