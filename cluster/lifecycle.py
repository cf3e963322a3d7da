"""Bring a garden up, report on it, and take it down.

``up`` starts (or joins) Ray, deploys the Serve application built from the
config, and waits until every model is healthy. A small state file records
where the garden runs so that ``status`` and ``down`` find it later.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Callable, Collection, Mapping
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from cluster._ray import (
    check_port_free,
    connect,
    local_ray_alive,
    start_local_ray,
    stop_local_ray,
)
from cluster.app import ROUTER_DEPLOYMENT, build_app, profile_check, router_env
from cluster.config import GardenConfig
from cluster.exceptions import ClusterError, StartupError
from cluster.processes import cluster_processes, kill_garden_processes, kill_tree
from cluster.ray_internals import (
    draining_replicas,
    serve_controller,
    serve_details,
    start_deleting_app,
)
from cluster.startup import Stage, engine_up_replicas, stage_counts, status_text
from cluster.store import RayKVStore, SharedStore

__all__ = [
    "DeploymentProgress",
    "RunState",
    "down",
    "read_state",
    "run_dir",
    "serving_deployments",
    "status",
    "up",
]

logger = logging.getLogger(__name__)


def run_dir() -> Path:
    """Where run state and logs live (``$GARDEN_RUN_DIR``, default ~/.cache/model-garden/run)."""
    default = Path("~/.cache/model-garden/run").expanduser()
    return Path(os.environ.get("GARDEN_RUN_DIR", default)).expanduser()


@dataclass(frozen=True)
class RunState:
    """Where a running garden lives."""

    address: str
    app: str
    host: str
    port: int
    owns_cluster: bool
    #: Ray's Prometheus port (``telemetry.metrics_port``); None in older state files.
    metrics_port: int | None = None

    @property
    def metrics_url(self) -> str | None:
        """Ray's Prometheus endpoint of this garden, when known."""
        return (
            None if self.metrics_port is None else f"http://127.0.0.1:{self.metrics_port}/metrics"
        )

    @property
    def endpoint(self) -> str:
        """Base URL of the OpenAI-compatible API."""
        return f"http://{self.host}:{self.port}/v1"


@dataclass(frozen=True)
class DeploymentProgress:
    """One deployment's state as Ray Serve reports it, with its replicas' start stages."""

    name: str
    status: str
    running: int
    target: int
    message: str
    #: Replicas at each stage of their start (``cluster.startup``), by stage label.
    stages: dict[str, int] = field(default_factory=dict)
    #: Held at zero replicas by ``up`` until the garden serves (then ``queued``).
    held: bool = False

    @property
    def healthy(self) -> bool:
        """True once the deployment serves with all its replicas."""
        return self.status == "HEALTHY"

    @property
    def steps(self) -> tuple[int, int]:
        """(steps taken, steps in all): three steps up per wanted replica, for a bar."""
        done = 0 if self.held else sum(s * self.stages.get(s.label, 0) for s in Stage)
        return done, Stage.HEALTHY * max(self.target, 1)

    @property
    def stage(self) -> str:
        """The stage of its least advanced replica (``queued`` while held)."""
        if self.held:
            return QUEUED
        for stage in Stage:
            if self.stages.get(stage.label):
                return stage.label
        return Stage.HEALTHY.label


#: The stage of a model ``up`` holds at zero replicas until the garden serves.
QUEUED = "queued"


def serving_deployments(garden: GardenConfig) -> frozenset[str]:
    """The deployments that must be healthy for ``garden`` to serve: the router, the generalist."""
    return frozenset({ROUTER_DEPLOYMENT, garden.generalist.name})


def _state_file() -> Path:
    return run_dir() / "garden.json"


def read_state() -> RunState | None:
    """The state of the garden started from this machine, if any."""
    try:
        return RunState(**json.loads(_state_file().read_text()))
    except (OSError, ValueError, TypeError):
        return None


def _write_state(state: RunState) -> None:
    path = _state_file()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(asdict(state), indent=2))


def _serve_running() -> bool:
    # Looks for the controller actor: serve.status() would start Serve itself.
    import ray

    name, namespace = serve_controller()
    try:
        ray.get_actor(name, namespace=namespace)
    except ValueError:
        return False
    return True


def _import_serving_code() -> None:
    # Ray Serve LLM imports vLLM and torch: ~15 s of a core, overlapped with Ray's start.
    # The driver only builds configs, so vLLM's and Ray Serve LLM's INFO logs are noise here.
    os.environ.setdefault("VLLM_LOGGING_LEVEL", "WARNING")
    from deployments.model import import_serving_code

    import_serving_code()

    logging.getLogger("ray.llm").setLevel(logging.WARNING)
    logging.getLogger("ray.serve").setLevel(logging.WARNING)


def _progress_of(app: str, details: dict[str, Any], store: SharedStore) -> list[DeploymentProgress]:
    out = []
    for name, dep in details.get("deployments", {}).items():
        replicas = dep.get("replicas", [])
        counts = stage_counts(dep, engine_up_replicas(store, app, name))
        out.append(
            DeploymentProgress(
                name=name,
                status=status_text(dep.get("status")),
                running=sum(status_text(r.get("state")) == "RUNNING" for r in replicas),
                target=int(dep.get("target_num_replicas") or len(replicas)),
                message=str(dep.get("message") or ""),
                stages={stage.label: n for stage, n in counts.items()},
            )
        )
    return out


def _app_details(app: str) -> dict[str, Any] | None:
    details = serve_details()
    found = None if details is None else details.get("applications", {}).get(app)
    return None if found is None else dict(found)


def status(app: str, store: SharedStore | None = None) -> list[DeploymentProgress]:
    """Per-deployment progress of ``app`` on the connected cluster.

    From one call to Serve's controller (its details, as the plain dict it
    sends) and the replicas' engine-up reports in ``store`` (Ray's KV store
    by default).
    """
    details = _app_details(app)
    if details is None:
        raise ClusterError(f"no garden application {app!r} is deployed on this cluster")
    return _progress_of(app, details, RayKVStore() if store is None else store)


def _wait_healthy(
    app: str,
    timeout_s: float,
    on_progress: Callable[[list[DeploymentProgress]], None] | None,
    floors: Mapping[str, int],
    serving: tuple[Collection[str], Callable[[], None]] | None = None,
    held: Callable[[], Collection[str]] = frozenset,
    clock: Callable[[], float] = time.monotonic,
) -> None:
    """Poll until every deployment of ``app`` is healthy, or raise StartupError.

    Healthy: Serve reports the application running and every deployment
    healthy, each with at least its ``floors`` running replicas (so that a
    model held at zero is not taken for ready). ``serving`` is (the
    deployments that serve, a callback): the callback runs once, the first
    time every one of them is healthy, and the next poll comes after it.
    ``held()`` names the deployments shown as queued.
    """
    deadline = clock() + timeout_s
    store = RayKVStore()
    while True:
        details = _app_details(app)
        if details is not None:
            waiting = held()
            progress = [
                replace(p, held=True) if p.name in waiting else p
                for p in _progress_of(app, details, store)
            ]
            if on_progress:
                on_progress(progress)
            healthy = {p.name for p in progress if p.healthy}
            if serving is not None and set(serving[0]) <= healthy:
                serving[1]()
                serving = None
                continue
            app_status = status_text(details.get("status"))
            whole = all(p.healthy and p.running >= floors.get(p.name, 0) for p in progress)
            if app_status == "RUNNING" and progress and whole:
                return
            if app_status == "DEPLOY_FAILED" or any(p.status == "DEPLOY_FAILED" for p in progress):
                failed = [f"{p.name}: {p.message}" for p in progress if p.status != "HEALTHY"]
                message = str(details.get("message") or "")
                raise StartupError(
                    "garden failed to deploy:\n  " + "\n  ".join(failed or [message])
                )
        if clock() > deadline:
            raise StartupError(
                f"garden not healthy after {timeout_s:.0f}s; `garden status` shows what is pending"
            )
        time.sleep(1.0)


def up(
    garden: GardenConfig,
    *,
    address: str | None = None,
    timeout_s: float = 900,
    on_progress: Callable[[list[DeploymentProgress]], None] | None = None,
    on_serving: Callable[[], None] | None = None,
    staged: bool = True,
) -> RunState:
    """Deploy ``garden`` and wait until every model is healthy.

    A first deploy is staged: the router and the generalist start alone,
    with every other model held at zero replicas, and the rest start as soon
    as those two are healthy, when ``on_serving`` runs: from then on the
    garden serves, ``auto`` covering each specialist still starting with the
    generalist (``cold_start``). The second deploy changes only the held
    models' autoscaling config, so Serve restarts nothing (each deployment's
    code version is pinned). A deploy onto a running garden (an update) is
    not staged; ``on_serving`` then runs at its first poll. ``staged=False``
    starts every model at once (``garden bench startup --all-at-once``, the
    baseline the staging is measured against).

    With ``address`` None a local Ray is started (or the one an earlier
    ``up`` started is reused); otherwise the cluster at ``address`` is joined.
    Raises before starting anything when a checkpoint is missing, a model on
    the garden policy has no service profile, the port
    is taken, or ``router.auth`` names an unset or empty variable (this
    process's environment, which the router replicas then receive).
    """
    from ray import serve

    from deployments.model import resolve_source

    for spec in garden.models:  # a missing checkpoint fails before anything starts
        resolve_source(garden, spec)
    profile_check(garden)  # so does a model the garden policy cannot size
    env = router_env(garden, os.environ)  # so do missing API keys
    previous = read_state()
    owns = address is None
    log = run_dir() / "ray.log"
    if address is None and previous is not None and previous.owns_cluster and local_ray_alive():
        address = previous.address  # reuse the Ray an earlier `garden up` started
    if address is None:
        check_port_free(garden.router.host, garden.router.port)
        address = start_local_ray(
            log,
            metrics_port=garden.telemetry.metrics_port,
            env=garden.router.serve_env(),
            meanwhile=_import_serving_code,
        )
    connect(address)
    _import_serving_code()  # no-op when Ray's start already did it
    if not _serve_running():
        check_port_free(garden.router.host, garden.router.port)
        serve.start(
            proxy_location=garden.router.proxy_location,
            http_options={"host": garden.router.host, "port": garden.router.port},
        )
    state = RunState(
        address,
        garden.name,
        garden.router.host,
        garden.router.port,
        owns,
        garden.telemetry.metrics_port,
    )
    _write_state(state)
    # A first deploy starts the router and the generalist alone, the rest once they
    # serve: on a small machine six replicas starting at once all take the
    # longest time, and the garden would serve only when every one is up.
    fresh = _app_details(garden.name) is None
    holding = (
        frozenset(m.name for m in garden.models) - serving_deployments(garden)
        if fresh and staged
        else frozenset()
    )

    def deploy(held: frozenset[str]) -> None:
        target = serve.RunTarget(
            build_app(garden, env=env, held=held), name=garden.name, route_prefix="/"
        )
        serve.run_many(
            [target],
            wait_for_ingress_deployment_creation=False,
            wait_for_applications_running=False,
        )

    def serves() -> None:
        nonlocal holding
        if holding:
            logger.info("garden up: serving; starting %s", ", ".join(sorted(holding)))
            holding = frozenset()
            deploy(holding)  # the held models' autoscaling only: nothing else restarts
        if on_serving is not None:
            on_serving()

    deploy(holding)
    _wait_healthy(
        garden.name,
        timeout_s,
        on_progress,
        floors={m.name: m.autoscaling.min_replicas for m in garden.models},
        serving=(serving_deployments(garden), serves),
        held=lambda: holding,
    )
    return state


def _drain(state: RunState, drain_s: float, clock: Callable[[], float] = time.monotonic) -> None:
    """Delete ``state``'s Serve application gracefully, waiting at most ``drain_s`` seconds.

    Drained once the application is gone, or once only router replicas are
    left: every request a router carries runs on a model replica, and those
    have finished theirs. Behind HAProxy Serve holds a router replica open
    for ``RAY_SERVE_DIRECT_INGRESS_MIN_DRAINING_PERIOD_S`` (30 s) after its
    last request, so that load balancers can deregister it; with the whole
    application going there is nothing to deregister from.

    No call is left blocked in Ray when this returns: ``down`` stops Ray
    next, and a driver whose Ray stops under a running call exits.
    """
    from ray.exceptions import RayError
    from ray.serve.exceptions import RayServeException

    try:
        connect(state.address)
    except ClusterError:
        return  # the cluster is gone: nothing is in flight
    deadline = clock() + drain_s
    routers_only = 0  # polls in a row that found only router replicas left
    try:
        start_deleting_app(state.app)
        while clock() < deadline:
            details = serve_details()
            if details is None or state.app not in details.get("applications", {}):
                return
            left = draining_replicas(state.app)
            routers_only = routers_only + 1 if set(left) <= {ROUTER_DEPLOYMENT} else 0
            # Two polls apart: a router relaying a model's last chunks has sent them.
            if routers_only >= 2:
                logger.info("garden down: every model replica has drained")
                return
            time.sleep(0.5)
    except (RayError, RayServeException) as err:  # logged; the stop that follows runs
        logger.warning("garden down: the drain failed (%r); stopping", err)
        return
    logger.warning("garden down: requests still in flight after %.0f s; stopping", drain_s)


def down(*, timeout_s: float = 30, drain_s: float = 30) -> list[int]:
    """Stop the garden this machine started; return pids that survived (none expected).

    First it drains: the garden's Serve application is deleted, and Serve
    shuts each replica down gracefully, letting the requests it has in
    flight finish (up to its ``graceful_shutdown_timeout_s``, 20 s), for at
    most ``drain_s`` seconds in all (0: no drain). Then a cluster the garden
    started is stopped whole (``ray stop --force``); on a joined cluster
    only the application was deleted. Either way every process carrying the
    garden marker, orphaned vLLM engines included, is killed with its
    process tree, and so is every process left of a cluster the garden
    started (Serve's HAProxy outlives ``ray stop``).
    """
    state = read_state()
    if state is not None and drain_s > 0:
        _drain(state, drain_s)
    app = state.app if state else None
    survivors = []
    if state is not None and not state.owns_cluster:
        from ray import serve

        from cluster.counters import end_counter_actor

        connect(state.address)
        serve.delete(state.app)  # at once if the drain did it
        end_counter_actor(state.app)  # the quota counters go with the garden
    elif state is not None:
        import ray

        ray.shutdown()  # disconnect first, so this driver does not report the stop as a crash
        stop_local_ray(run_dir() / "ray.log")
        # What `ray stop` does not know: Serve's HAProxy (a child of an actor).
        survivors = kill_tree(cluster_processes(str(run_dir())), timeout=timeout_s)
    survivors += kill_garden_processes(app, timeout=timeout_s)
    _state_file().unlink(missing_ok=True)
    return [p.pid for p in survivors]
