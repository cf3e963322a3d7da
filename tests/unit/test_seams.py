"""The two seams into Ray's and vLLM's internals: nothing else reaches them, and they still hold.

``cluster.ray_internals`` is the only module that touches Ray's or Ray
Serve's non-public names; ``deployments._internals`` the only one that
touches Ray Serve LLM's or vLLM's. When an upgrade moves one of them, the
``problems`` tests fail with the seam's own message naming what moved.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

pytestmark = pytest.mark.unit

REPO = Path(__file__).resolve().parents[2]
PACKAGES = ("cluster", "router", "autoscaling", "deployments", "loadtest")
SEAMS = {
    "ray": REPO / "cluster" / "ray_internals.py",
    "vllm": REPO / "deployments" / "_internals.py",
}


def _is_internal(module: str, names: list[str]) -> str | None:
    """Which seam an import of ``names`` from ``module`` belongs to (None: public API)."""
    parts = module.split(".")
    if parts[:2] == ["vllm", "benchmarks"]:
        # What `vllm bench serve` runs: vLLM's benchmark client, driven by its own
        # CLI arguments (tests/integration/test_vllm_bench_client.py holds it).
        return None
    if parts[0] == "vllm" or module.startswith("ray.llm._internal"):
        return "vllm"
    if parts[0] == "ray":
        private = any(p.startswith("_") or p == "experimental" for p in parts[1:])
        if private or any(n.startswith("_") for n in names):
            return "ray"
    return None


def _reaches(path: Path) -> list[tuple[int, str, str]]:
    out = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            seam = _is_internal(node.module, [a.name for a in node.names])
            if seam:
                out.append((node.lineno, node.module, seam))
        elif isinstance(node, ast.Import):
            for alias in node.names:
                seam = _is_internal(alias.name, [])
                if seam:
                    out.append((node.lineno, alias.name, seam))
    return out


def test_only_the_seams_reach_internals() -> None:
    stray = []
    for package in PACKAGES:
        for path in sorted((REPO / package).rglob("*.py")):
            for line, module, seam in _reaches(path):
                if path != SEAMS[seam]:
                    stray.append(f"{path.relative_to(REPO)}:{line} imports {module}")
    assert stray == [], "reach these through their seam: " + "; ".join(stray)


def test_the_scan_finds_internal_imports() -> None:
    """The scan itself: these are internal, those public."""
    assert _is_internal("ray.serve._private.common", ["ReplicaID"]) == "ray"
    assert _is_internal("ray.serve.context", ["_get_global_client"]) == "ray"
    assert _is_internal("ray.experimental.internal_kv", ["_internal_kv_get"]) == "ray"
    assert _is_internal("ray.llm._internal.common.callbacks.base", []) == "vllm"
    assert _is_internal("vllm.exceptions", ["VLLMValidationError"]) == "vllm"
    assert _is_internal("vllm.benchmarks.serve", ["add_cli_args", "main"]) is None
    assert _is_internal("ray.serve.llm", ["LLMServer"]) is None
    assert _is_internal("ray.serve.config", ["AutoscalingContext"]) is None


def test_the_ray_seam_still_holds() -> None:
    from cluster import ray_internals

    problems = ray_internals.problems()
    assert problems == [], (
        f"Ray internals moved since ray {ray_internals.CHECKED_AGAINST}: {problems}; "
        "update cluster/ray_internals.py"
    )


def test_the_vllm_seam_still_holds() -> None:
    try:
        from deployments import _internals
    except ImportError as err:  # a name it imports is gone
        pytest.fail(f"deployments/_internals.py no longer imports: {err!r}")
    problems = _internals.problems()
    assert problems == [], (
        f"Ray Serve LLM / vLLM internals moved since {_internals.CHECKED_AGAINST}: "
        f"{problems}; update deployments/_internals.py"
    )


def test_a_moved_internal_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    from cluster import ray_internals
    from deployments import _internals

    monkeypatch.setattr(
        ray_internals,
        "_REACHES",
        (
            ("ray.serve._private.common", "NoSuchThing", ()),
            ("ray.serve._private.common", "ReplicaID", ("renamed_arg",)),
        ),
    )
    assert ray_internals.problems() == [
        "ray.serve._private.common.NoSuchThing is gone",
        "ray.serve._private.common.ReplicaID takes ('unique_id', 'deployment_id'), "
        "the garden passes ('renamed_arg',)",
    ]
    monkeypatch.setattr(
        _internals,
        "_MEMBERS",
        (("ray.serve.llm", "LLMServer", "_no_such_method", ("self",)),),
    )
    monkeypatch.setattr(_internals, "_ATTRIBUTES", (("ray.serve.llm", "LLMServer", "self._gone"),))
    found = _internals.problems()
    assert "ray.serve.llm.LLMServer._no_such_method is gone" in found
    assert "ray.serve.llm.LLMServer no longer sets self._gone" in found


def test_only_the_seam_overrides_private_members() -> None:
    """Subclasses of Ray Serve LLM's classes outside the seam override public hooks only."""
    hooked = {"HookedEngine", "HookedServer", "VLLMEngine", "LLMServer", "CallbackBase"}
    found = []
    for package in PACKAGES:
        for path in sorted((REPO / package).rglob("*.py")):
            if path == SEAMS["vllm"]:
                continue
            for node in ast.walk(ast.parse(path.read_text())):
                if not isinstance(node, ast.ClassDef):
                    continue
                bases = {b.id for b in node.bases if isinstance(b, ast.Name)}
                if not bases & hooked:
                    continue
                for item in node.body:
                    is_method = isinstance(item, ast.FunctionDef | ast.AsyncFunctionDef)
                    if is_method and item.name.startswith("_") and not item.name.endswith("__"):
                        found.append(f"{path.relative_to(REPO)}: {node.name}.{item.name}")
    assert found == [], f"private members overridden outside the seam: {found}"


def test_draining_replicas_counts_the_apps_replica_actors(monkeypatch: pytest.MonkeyPatch) -> None:
    """Serve's replica actor names, as ReplicaID writes them, counted by deployment."""
    import ray
    from ray.serve._private.common import DeploymentID, ReplicaID

    from cluster.ray_internals import draining_replicas

    def named(app: str, deployment: str, unique: str) -> dict[str, str]:
        replica = ReplicaID(unique, DeploymentID(name=deployment, app_name=app))
        return {"name": replica.to_full_id_str(), "namespace": "serve"}

    actors = [
        named("garden", "router", "a1"),
        named("garden", "router", "b2"),
        named("garden", "law", "c3"),
        named("other", "law", "d4"),
        {"name": "SERVE_CONTROLLER_ACTOR", "namespace": "serve"},
    ]
    monkeypatch.setattr(ray.util, "list_named_actors", lambda all_namespaces=False: actors)
    assert draining_replicas("garden") == {"router": 2, "law": 1}
    assert draining_replicas("none") == {}


def test_a_pinned_code_version_survives_the_application_and_its_options() -> None:
    from ray import serve

    from cluster.ray_internals import code_version_of, with_code_version

    @serve.deployment
    class Echo:
        def __call__(self) -> str:
            return "echo"

    app = Echo.bind()
    assert code_version_of(app) is None  # serve.run would give it a random one
    pinned = with_code_version(app, "v1")
    assert code_version_of(pinned) == "v1"
    assert code_version_of(with_code_version(pinned, "v2")) == "v2"


def test_the_router_calls_over_its_own_processs_transport() -> None:
    """A handle unpickled from the driver's bind takes the replica's default transport."""
    from types import SimpleNamespace

    from ray.serve._private.constants import RAY_SERVE_USE_GRPC_BY_DEFAULT

    from cluster.ray_internals import transport_of, with_process_transport

    class Handle:
        def __init__(self, by_reference: bool) -> None:
            self.handle_options = SimpleNamespace(_by_reference=by_reference)

        def options(self, **kwargs: bool) -> Handle:
            return Handle(kwargs["_by_reference"])

    driver_bound = Handle(by_reference=True)  # the driver runs without the switches
    expected = "grpc" if RAY_SERVE_USE_GRPC_BY_DEFAULT else "actor"
    assert transport_of(with_process_transport(driver_bound)) == expected
    assert transport_of(Handle(by_reference=False)) == "grpc"


def test_serve_details_outlast_a_controller_mid_deploy(monkeypatch: pytest.MonkeyPatch) -> None:
    # Ray's controller fails get_serve_instance_details while it creates a
    # deployment; one poll of `garden up` must not die of it. A third failure
    # in a row is the caller's.
    import ray.serve.context
    from ray.exceptions import RayTaskError

    from cluster import ray_internals

    failures = [2]

    class _Client:
        def get_serve_details(self) -> dict[str, object]:
            if failures[0]:
                failures[0] -= 1
                cause = AttributeError("'NoneType' object has no attribute 'deployment_config'")
                raise RayTaskError("get_serve_instance_details", "traceback", cause)
            return {"applications": {}}

    def client(raise_if_no_controller_running: bool = True) -> _Client:
        return _Client()

    monkeypatch.setattr(ray.serve.context, "_get_global_client", client)
    assert ray_internals.serve_details(pause_s=0) == {"applications": {}}
    failures[0] = 3
    with pytest.raises(RayTaskError):
        ray_internals.serve_details(pause_s=0)
