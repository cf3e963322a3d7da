"""The garden's one seam into Ray's and Ray Serve's internals.

Every Ray or Ray Serve name that is not public API is reached here, and only
here (``tests/unit/test_seams.py`` checks both that nothing else imports
them and that each one is still where it was). Checked against ray 2.60.0;
after an upgrade, :func:`problems` names what moved. Ray is imported inside
each function, so the CLI imports this module without importing Ray.

What is reached, and why no public API serves:

* ``ray.experimental.internal_kv``: the GCS key-value store, which every
  process of a cluster reaches and which lives as long as the cluster; the
  garden's shared store (``cluster.store``) keeps router and policy state
  there. Ray's dashboard and Serve use it the same way.
* ``ray.serve.delete``'s private ``_blocking=False``: ``garden down``'s drain
  waits for the deletion itself, bounded by ``--drain-timeout``; the public
  form blocks without a bound, and a driver cannot stop Ray under a call
  still blocked in it.
* ``ray.serve._private.constants`` ``SERVE_CONTROLLER_NAME`` and
  ``SERVE_NAMESPACE``: to ask whether Serve runs without starting it
  (``serve.status()`` would).
* ``ray.serve._private.common.REPLICA_ID_FULL_ID_STR_PREFIX``, and the
  replica actor names Serve builds from it (``<prefix><app>#<deployment>#<id>``):
  a replica actor outlives its deployment's deletion while it drains, and
  ``garden down`` counts the ones still draining (:func:`draining_replicas`).
* ``ray.serve.context._get_global_client``: the controller's serve details as
  the plain dict it sends; ``serve.status()`` re-parses them into pydantic
  models at ten times the CPU, which the router cannot afford twice a second.
* ``ray.serve.autoscaling_policy``'s ``_get_cold_start_scale_up_replicas``,
  ``_extract_internal_policy_state``, ``_apply_scaling_factors`` and
  ``_apply_delay_logic``: the pieces of the wrapper Ray puts around every
  deployment policy, which the simulator composes on its own clock (Ray's
  delay logic takes ``_now`` for that).
* ``Deployment.options``' private ``version`` (with ``_internal=True``) and
  ``Application._bound_deployment``: a deployment's code version. Serve
  compares it to decide whether a redeploy restarts a deployment's replicas
  or only updates their config; ``serve.run`` gives every deployment a
  random one, so each ``garden up`` on a running garden would restart every
  replica. The garden pins a hash of what the replicas run
  (:func:`with_code_version`), as Serve's declarative deploys do with their
  import path and arguments.
* ``DeploymentHandle.options``' private ``_by_reference``, and
  ``ray.serve._private.constants.RAY_SERVE_USE_GRPC_BY_DEFAULT``: how a
  handle's calls travel (Ray actor calls with object streaming, or gRPC).
  A handle in a deployment's arguments keeps the options of the process
  that bound it, the ``garden up`` driver, which does not run in Ray
  Serve's throughput-optimized mode; the router re-applies its own
  process's default (:func:`with_process_transport`), so that its calls go
  over gRPC where the cluster runs in that mode.
* ``ray.serve._private.common`` ``DeploymentID`` and ``ReplicaID``, and
  ``ray.serve._private.metrics_utils``' ``InMemoryMetricsStore``,
  ``merge_instantaneous_total`` and ``aggregate_timeseries``: the simulator
  replays Ray Serve's own autoscaling metrics pipeline and feeds Ray's own
  policies the context they get in a cluster.
"""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Sequence
from typing import Any

__all__ = [
    "CHECKED_AGAINST",
    "aggregate_mean",
    "apply_delay_logic",
    "apply_scaling_factors",
    "code_version_of",
    "cold_start_replicas",
    "deployment_id",
    "draining_replicas",
    "internal_policy_state",
    "kv_delete",
    "kv_get",
    "kv_keys",
    "kv_put",
    "merge_instantaneous_total",
    "metrics_store",
    "problems",
    "replica_id",
    "serve_controller",
    "serve_details",
    "start_deleting_app",
    "transport_of",
    "with_code_version",
    "with_process_transport",
]

#: The Ray version every reach below was checked against.
CHECKED_AGAINST = "2.60.0"

_KV = "ray.experimental.internal_kv"
_METRICS = "ray.serve._private.metrics_utils"
_COMMON = "ray.serve._private.common"
_POLICY = "ray.serve.autoscaling_policy"

#: (module, name, the parameters the garden passes, in order).
_REACHES: tuple[tuple[str, str, tuple[str, ...]], ...] = (
    (_COMMON, "REPLICA_ID_FULL_ID_STR_PREFIX", ()),
    (_KV, "_internal_kv_put", ("key", "value")),
    (_KV, "_internal_kv_get", ("key",)),
    (_KV, "_internal_kv_list", ("prefix",)),
    (_KV, "_internal_kv_del", ("key",)),
    ("ray.serve._private.constants", "SERVE_CONTROLLER_NAME", ()),
    ("ray.serve._private.constants", "SERVE_NAMESPACE", ()),
    ("ray.serve.context", "_get_global_client", ("raise_if_no_controller_running",)),
    ("ray.serve.api", "delete", ("name", "_blocking")),
    ("ray.serve._private.constants", "RAY_SERVE_USE_GRPC_BY_DEFAULT", ()),
    ("ray.serve.handle", "DeploymentHandle.options", ("_by_reference",)),
    ("ray.serve.deployment", "Deployment.options", ("version", "_internal")),
    ("ray.serve.deployment", "Application.__init__", ("bound_deployment",)),
    (_POLICY, "_get_cold_start_scale_up_replicas", ("ctx",)),
    (_POLICY, "_extract_internal_policy_state", ("policy_state",)),
    (
        _POLICY,
        "_apply_scaling_factors",
        ("desired_num_replicas", "current_num_replicas", "autoscaling_config"),
    ),
    (
        _POLICY,
        "_apply_delay_logic",
        ("desired_num_replicas", "curr_target_num_replicas", "config", "policy_state", "_now"),
    ),
    (_COMMON, "DeploymentID", ("name", "app_name")),
    (_COMMON, "ReplicaID", ("unique_id", "deployment_id")),
    (_METRICS, "InMemoryMetricsStore", ()),
    (_METRICS, "merge_instantaneous_total", ("replicas_timeseries",)),
    (
        _METRICS,
        "aggregate_timeseries",
        ("timeseries", "aggregation_function", "last_window_s", "window_start"),
    ),
)


# -- the GCS key-value store --------------------------------------------------------


def kv_put(key: str, value: str, namespace: str) -> None:
    """Set ``key`` to ``value`` in the cluster's KV store (a connected process only)."""
    from ray.experimental.internal_kv import _internal_kv_put

    _internal_kv_put(key.encode(), value.encode(), namespace=namespace)


def kv_get(key: str, namespace: str) -> str | None:
    """The value of ``key`` (None when unset or empty)."""
    from ray.experimental.internal_kv import _internal_kv_get

    raw = _internal_kv_get(key.encode(), namespace=namespace)
    return raw.decode(errors="replace") if raw else None


def kv_keys(prefix: str, namespace: str) -> list[str]:
    """Every key that starts with ``prefix``."""
    from ray.experimental.internal_kv import _internal_kv_list

    return [
        k.decode(errors="replace") for k in _internal_kv_list(prefix.encode(), namespace=namespace)
    ]


def kv_delete(key: str, namespace: str) -> None:
    """Remove ``key`` (no error if absent)."""
    from ray.experimental.internal_kv import _internal_kv_del

    _internal_kv_del(key.encode(), namespace=namespace)


# -- the Serve controller -------------------------------------------------------------


def serve_controller() -> tuple[str, str]:
    """The Serve controller actor's (name, namespace)."""
    from ray.serve._private.constants import SERVE_CONTROLLER_NAME, SERVE_NAMESPACE

    return SERVE_CONTROLLER_NAME, SERVE_NAMESPACE


#: Tries of one serve-details call, and the pause between them.
_DETAILS_TRIES = 3
_DETAILS_PAUSE_S = 0.5


def serve_details(*, pause_s: float = _DETAILS_PAUSE_S) -> dict[str, Any] | None:
    """The controller's serve details as the dict it sends (None: no controller runs).

    Blocking: one call to the controller, tried again up to twice when the
    controller's method fails. Ray 2.60's controller raises an
    AttributeError from ``get_serve_instance_details`` while it is still
    creating a deployment (its info is not yet set), so a poll during
    ``garden up`` can hit it; a third failure in a row is raised.
    """
    import time

    from ray.exceptions import RayTaskError
    from ray.serve.context import _get_global_client

    client = _get_global_client(raise_if_no_controller_running=False)
    if client is None:
        return None
    for _ in range(_DETAILS_TRIES - 1):
        try:
            return dict(client.get_serve_details())
        except RayTaskError:
            time.sleep(pause_s)
    return dict(client.get_serve_details())


def start_deleting_app(name: str) -> None:
    """Ask Serve to delete application ``name``, and return without waiting.

    Serve then shuts each replica down gracefully; the caller polls
    :func:`serve_details` for the application to go. ``serve.delete``'s
    public form blocks until then, with no timeout.
    """
    from ray import serve

    serve.delete(name, _blocking=False)


def draining_replicas(app: str) -> dict[str, int]:
    """Replica actors of application ``app`` still alive, by deployment.

    Serve names every replica actor ``<prefix><app>#<deployment>#<id>``
    (``ReplicaID.to_full_id_str``); read with Ray's public
    ``list_named_actors``.
    """
    import ray
    from ray.serve._private.common import REPLICA_ID_FULL_ID_STR_PREFIX as prefix

    out: dict[str, int] = {}
    for actor in ray.util.list_named_actors(all_namespaces=True):
        name = actor["name"] if isinstance(actor, dict) else str(actor)
        owner, _, rest = name.removeprefix(prefix).partition("#")
        if name.startswith(prefix) and owner == app and rest:
            deployment = rest.partition("#")[0]
            out[deployment] = out.get(deployment, 0) + 1
    return out


def with_code_version(app: Any, version: str) -> Any:
    """``app`` (a bound ``Application``) with its deployment's code version pinned to ``version``.

    Redeploying it with the same version restarts no replica unless Serve's
    own restart triggers changed (actor options, placement); its config
    (autoscaling, limits) is updated in place.
    """
    from ray.serve.deployment import Application

    return Application(app._bound_deployment.options(version=version, _internal=True))


def code_version_of(app: Any) -> str | None:
    """The code version pinned on ``app``'s deployment (None: Serve picks a random one)."""
    version: str | None = app._bound_deployment.version
    return version


def with_process_transport(handle: Any) -> Any:
    """``handle`` calling over this process's own default transport (gRPC or actor calls).

    Ray Serve reads the default at import, from ``RAY_SERVE_USE_GRPC_BY_DEFAULT``
    (on in its throughput-optimized mode); a handle unpickled from a
    deployment's arguments carries the default of the driver that bound it.
    """
    from ray.serve._private.constants import RAY_SERVE_USE_GRPC_BY_DEFAULT

    return handle.options(_by_reference=not RAY_SERVE_USE_GRPC_BY_DEFAULT)


def transport_of(handle: Any) -> str:
    """How ``handle``'s calls travel: ``"grpc"`` or ``"actor"``."""
    return "actor" if handle.handle_options._by_reference else "grpc"


# -- Serve's policy wrapper and autoscaling metrics, for the simulator ------------------


def cold_start_replicas(ctx: Any) -> int | None:
    """Ray's cold-start fast path: replicas to start from zero (None: not cold)."""
    from ray.serve.autoscaling_policy import _get_cold_start_scale_up_replicas

    return _get_cold_start_scale_up_replicas(ctx)


def internal_policy_state(state: dict[str, Any]) -> dict[str, Any]:
    """The part of a policy state that Ray's wrapper keeps for itself (removed from ``state``)."""
    from ray.serve.autoscaling_policy import _extract_internal_policy_state

    return _extract_internal_policy_state(state)


def apply_scaling_factors(desired: float, current: int, config: Any) -> int:
    """Ray's upscaling/downscaling factors applied to a policy's ``desired`` replicas."""
    from ray.serve.autoscaling_policy import _apply_scaling_factors

    return _apply_scaling_factors(desired, current, config)


def apply_delay_logic(
    desired: int, target: int, config: Any, state: dict[str, Any], now: float | None
) -> tuple[int, dict[str, Any]]:
    """Ray's upscale/downscale delays, timed by ``now`` (None: ``time.time()``)."""
    from ray.serve.autoscaling_policy import _apply_delay_logic

    return _apply_delay_logic(desired, target, config, state, _now=now)


def deployment_id(name: str, app: str) -> Any:
    """Ray Serve's ``DeploymentID`` of deployment ``name`` in application ``app``."""
    from ray.serve._private.common import DeploymentID

    return DeploymentID(name=name, app_name=app)


def replica_id(unique_id: str, deployment: Any) -> Any:
    """Ray Serve's ``ReplicaID`` of replica ``unique_id`` of ``deployment``."""
    from ray.serve._private.common import ReplicaID

    return ReplicaID(unique_id=unique_id, deployment_id=deployment)


def metrics_store() -> Any:
    """A fresh ``InMemoryMetricsStore``: what a Serve handle or replica records into."""
    from ray.serve._private.metrics_utils import InMemoryMetricsStore

    return InMemoryMetricsStore()  # type: ignore[no-untyped-call]


def merge_instantaneous_total(series: Sequence[Sequence[Any]]) -> list[Any]:
    """Ray's merge of several reporters' gauge series into one total series."""
    from ray.serve._private.metrics_utils import merge_instantaneous_total as merge

    return list(merge([list(s) for s in series]))


def aggregate_mean(merged: Sequence[Any], last_window_s: float, window_start: float | None) -> Any:
    """Ray's time-weighted MEAN of ``merged`` (None without data)."""
    from ray.serve._private.metrics_utils import aggregate_timeseries
    from ray.serve.config import AggregationFunction

    return aggregate_timeseries(
        list(merged),
        aggregation_function=AggregationFunction.MEAN,
        last_window_s=last_window_s,
        window_start=window_start,
    )


# -- the check ------------------------------------------------------------------------------


def _problem(module: str, name: str, params: tuple[str, ...]) -> str | None:
    found: Any = importlib.import_module(module)
    for part in name.split("."):  # a class's method: "Deployment.options"
        found = getattr(found, part, None)
    if found is None:
        return f"{module}.{name} is gone"
    if params:
        names = tuple(p for p in inspect.signature(found).parameters if p != "self")
        missing = [p for p in params if p not in names]
        if missing:
            return f"{module}.{name} takes {names}, the garden passes {params}"
    return None


def problems() -> list[str]:
    """Each reach of this seam that no longer holds, as a message; [] when all do."""
    out: list[str] = []
    for reach in _REACHES:
        try:
            problem = _problem(*reach)
        except (ImportError, TypeError, ValueError) as err:
            problem = f"{reach[0]}.{reach[1]}: {err!r}"
        if problem:
            out.append(problem)
    return out
