"""Replica start stages (cluster.startup) and garden up's bars, in a terminal and without one."""

from __future__ import annotations

import io
from typing import Any

import pytest
from rich.console import Console

from cluster.cli import _run
from cluster.lifecycle import DeploymentProgress
from cluster.startup import Stage, engine_up_replicas, report_engine_up, stage_counts
from cluster.store import MemoryStore

pytestmark = pytest.mark.unit


def _replica(rid: str, state: str, pid: int | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {"replica_id": rid, "state": state}
    if pid is not None:  # Serve's details leave an unset pid out
        out["pid"] = pid
    return out


def test_each_replica_is_at_the_stage_serve_and_its_report_say() -> None:
    deployment = {
        "target_num_replicas": 5,
        "replicas": [
            _replica("a", "STARTING"),  # no worker process yet
            _replica("b", "STARTING", pid=11),  # constructor running, no engine report
            _replica("c", "STARTING", pid=12),  # engine reported up
            _replica("d", "RUNNING", pid=13),
            _replica("e", "STOPPING", pid=14),  # on its way down: not counted
        ],
    }
    counts = stage_counts(deployment, engine_up={"c", "d"})
    # One the controller wants but does not list yet is placing too.
    assert counts == {
        Stage.PLACING: 2,
        Stage.LOADING_WEIGHTS: 1,
        Stage.ENGINE_UP: 1,
        Stage.HEALTHY: 1,
    }


def test_an_engine_up_report_names_its_replica_and_lapses() -> None:
    now = [1000.0]
    store = MemoryStore(clock=lambda: now[0])
    report_engine_up(store, "garden", "law", "r1", at=now[0])
    report_engine_up(store, "garden", "law-x", "r2", at=now[0])  # a prefix of law's: kept apart
    assert engine_up_replicas(store, "garden", "law") == {"r1"}
    assert engine_up_replicas(store, "other", "law") == frozenset()
    now[0] += 7200
    assert engine_up_replicas(store, "garden", "law") == frozenset()


def _progress(status: str, running: int, target: int, **stages: int) -> DeploymentProgress:
    labels = {Stage[k.upper()].label: n for k, n in stages.items()}
    return DeploymentProgress("law", status, running, target, "", labels)


def test_a_deployment_is_held_up_at_its_least_advanced_replica() -> None:
    p = _progress("UPDATING", 1, 2, loading_weights=1, healthy=1)
    assert p.stage == "loading weights"
    assert p.steps == (1 + 3, 6)
    assert _progress("HEALTHY", 1, 1, healthy=1).stage == "healthy"


def _run_printer(monkeypatch: pytest.MonkeyPatch, *, terminal: bool) -> str:
    out = io.StringIO()
    monkeypatch.setattr(
        _run,
        "console",
        lambda stderr=False: Console(file=out, force_terminal=terminal, width=120),
    )
    with _run.ProgressPrinter() as progress:
        progress([_progress("UPDATING", 0, 1, placing=1)])
        progress([_progress("UPDATING", 0, 1, placing=1)])  # unchanged: no new line
        progress([_progress("UPDATING", 0, 1, loading_weights=1)])
        progress([_progress("UPDATING", 0, 1, engine_up=1)])
        progress([_progress("HEALTHY", 1, 1, healthy=1)])
    return out.getvalue()


def test_without_a_terminal_each_stage_is_one_line(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    _run_printer(monkeypatch, terminal=False)
    lines = capsys.readouterr().out.splitlines()
    assert [line.split("]", 1)[1].split() for line in lines] == [
        ["law", "placing", "0/1", "replicas", "(UPDATING)"],
        ["law", "loading", "weights", "0/1", "replicas", "(UPDATING)"],
        ["law", "engine", "up", "0/1", "replicas", "(UPDATING)"],
        ["law", "healthy", "1/1", "replicas", "(HEALTHY)"],
    ]


def test_in_a_terminal_a_bar_ends_at_healthy(monkeypatch: pytest.MonkeyPatch) -> None:
    text = _run_printer(monkeypatch, terminal=True)
    assert "\x1b[" in text  # drawn live, with escape codes
    final = text.rsplit("\r", 1)[-1]
    assert "law" in final and "healthy" in final and "1/1 replicas" in final


def _details(status: str, **deployments: tuple[str, list[str]]) -> dict[str, Any]:
    """Serve's details of one app: each deployment's (status, its replicas' states)."""
    return {
        "status": status,
        "deployments": {
            name: {
                "status": dep_status,
                "target_num_replicas": len(states),
                "replicas": [
                    _replica(f"{name}-{i}", state, pid=100 + i) for i, state in enumerate(states)
                ],
            }
            for name, (dep_status, states) in deployments.items()
        },
    }


def test_a_staged_start_serves_first_and_completes_once_every_floor_runs(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from cluster import lifecycle

    held = {"law"}
    polls = iter(
        [
            _details(
                "DEPLOYING",
                router=("UPDATING", ["STARTING"]),
                generalist=("UPDATING", ["STARTING"]),
                law=("HEALTHY", []),
            ),
            # Serving: the router and the generalist run; law is still held at zero.
            _details(
                "RUNNING",
                router=("HEALTHY", ["RUNNING"]),
                generalist=("HEALTHY", ["RUNNING"]),
                law=("HEALTHY", []),
            ),
            # A poll that still shows law at zero after its release: not complete.
            _details(
                "RUNNING",
                router=("HEALTHY", ["RUNNING"]),
                generalist=("HEALTHY", ["RUNNING"]),
                law=("HEALTHY", []),
            ),
            _details(
                "DEPLOYING",
                router=("HEALTHY", ["RUNNING"]),
                generalist=("HEALTHY", ["RUNNING"]),
                law=("UPDATING", ["STARTING"]),
            ),
            _details(
                "RUNNING",
                router=("HEALTHY", ["RUNNING"]),
                generalist=("HEALTHY", ["RUNNING"]),
                law=("HEALTHY", ["RUNNING"]),
            ),
        ]
    )
    monkeypatch.setattr(lifecycle, "_app_details", lambda app: next(polls))
    monkeypatch.setattr(lifecycle, "RayKVStore", MemoryStore)
    monkeypatch.setattr(lifecycle.time, "sleep", lambda s: None)
    seen: list[dict[str, str]] = []
    served: list[int] = []

    def serves() -> None:
        served.append(len(seen))
        held.clear()  # what up's callback does: release the held models

    lifecycle._wait_healthy(
        "garden",
        60,
        lambda progress: seen.append({p.name: p.stage for p in progress}),
        floors={"generalist": 1, "law": 1},
        serving=({"router", "generalist"}, serves),
        held=lambda: frozenset(held),
    )
    assert served == [2]  # once, at the second poll
    starting = {"router": "loading weights", "generalist": "loading weights"}
    assert seen[0] == {**starting, "law": "queued"}
    assert seen[2]["law"] == "healthy"  # released, at zero: the floor keeps the wait going
    assert seen[3]["law"] == "loading weights" and len(seen) == 5
