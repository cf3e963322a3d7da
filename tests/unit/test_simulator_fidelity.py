"""The simulator reproduces Ray's controller pieces and keeps the budget through swaps."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from autoscaling.budget import Claim, allowances
from autoscaling.simulate._controller import ray_wrapped
from autoscaling.simulate._metrics import window_mean

pytestmark = pytest.mark.unit


def _series(points: list[tuple[float, float]]) -> list[Any]:
    from ray.serve._private.common import TimeStampedValue

    return [TimeStampedValue(t, v) for t, v in points]


def test_window_mean_is_rays_aggregation_at_the_simulated_now() -> None:
    # The worked example of DeploymentAutoscalingState.get_total_num_requests.
    r1 = _series([(0.2, 5), (0.8, 7), (1.5, 6)])
    r2 = _series([(0.1, 3), (0.9, 4), (1.4, 8)])
    h1 = _series([(0.3, 2), (1.0, 3)])
    assert window_mean([r1, r2, h1], now=2.0) == pytest.approx(23.4 / 1.7)
    assert window_mean([], now=2.0) == 0.0


def _context(config: Any, *, current: int, target: int, total: float, state: dict[str, Any],
             now: float) -> Any:  # fmt: skip
    from ray.serve._private.common import DeploymentID
    from ray.serve.config import AutoscalingContext

    return AutoscalingContext(
        deployment_id=DeploymentID(name="law", app_name="garden"),
        deployment_name="law",
        app_name="garden",
        current_num_replicas=current,
        target_num_replicas=target,
        running_replicas=[],
        total_num_requests=total,
        total_queued_requests=0.0,
        aggregated_metrics={},
        raw_metrics={},
        capacity_adjusted_min_replicas=0,
        capacity_adjusted_max_replicas=5,
        policy_state=state,
        last_scale_up_time=None,
        last_scale_down_time=None,
        current_time=now,
        config=config,
    )


def test_ray_wrapped_matches_rays_own_wrapper(monkeypatch: pytest.MonkeyPatch) -> None:
    import ray.serve.autoscaling_policy as rap
    from ray.serve.config import AutoscalingConfig

    config = AutoscalingConfig(
        min_replicas=0, max_replicas=5, upscale_delay_s=3, downscale_delay_s=7
    )
    # Up after its delay, down after its delay, to zero from one, then a cold start.
    wishes = [
        3,
        3,
        3,
        3,
        1,
        1,
        0.5,
        0.5,
        0.5,
        0.5,
        0.5,
        0.5,
        0.5,
        2.2,
        0,
        0,
        0,
        0,
        0,
        0,
        0,
        0,
        2,
        2,
    ]

    def scripted(ctx: Any) -> tuple[float, dict[str, Any]]:
        return wishes[int(ctx.current_time)], {"mine": 1}

    clock = {"now": 0.0}
    monkeypatch.setattr(
        rap, "time", type("Clock", (), {"time": staticmethod(lambda: clock["now"])})
    )
    theirs, ours = rap._apply_autoscaling_config(scripted), ray_wrapped(scripted)
    state_t: dict[str, Any] = {}
    state_o: dict[str, Any] = {}
    target_t = target_o = 1
    seen: list[int] = []
    for t in range(len(wishes)):
        clock["now"] = float(t)
        total = 0.0 if 15 <= t < 22 else 4.0
        got_t, state_t = theirs(_context(config, current=target_t, target=target_t, total=total,
                                         state=dict(state_t), now=float(t)))  # fmt: skip
        got_o, state_o = ours(_context(config, current=target_o, target=target_o, total=total,
                                       state=dict(state_o), now=float(t)))  # fmt: skip
        assert (got_o, state_o) == (got_t, state_t), f"t={t}"
        target_t, target_o = int(got_t), int(got_o)
        seen.append(target_o)
    assert seen[-3:] == [0, 1, 1]  # the cold-start fast path ran


def _claim(model: str, wish: int, cost: float) -> Claim:
    return Claim(model, wish, wish * 4.0, 4.0, 1, 4, cost)


def test_growth_waits_for_the_replicas_a_cut_drains() -> None:
    claims = [_claim("a", 1, 1.0), _claim("b", 3, 1.0)]
    # "a" held 3 and is cut to 1: its 2 replicas drain, so "b" may not grow yet.
    now = allowances(claims, {"a": 3, "b": 1}, {}, 4.0, None)
    assert now == {"a": 1, "b": 1}
    # Once they are gone, "b" gets the budget.
    later = allowances(claims, {"a": 1, "b": 1}, {}, 4.0, None)
    assert later == {"a": 1, "b": 3}
    # Draining replicas of "a" still count against it.
    assert allowances(claims, {"a": 1, "b": 1}, {"a": 1}, 4.0, None) == {"a": 1, "b": 2}


def test_without_a_budget_everyone_gets_their_wish() -> None:
    claims = [_claim("a", 4, 1.0), _claim("b", 2, 1.0)]
    assert allowances(claims, {"a": 1, "b": 1}, {"a": 2}, None, None) == {"a": 4, "b": 2}


def _cli(*args: str) -> Any:
    from cluster.cli import _simulate  # noqa: F401  (registers the command)
    from cluster.cli._main import cli

    return CliRunner().invoke(cli, list(args), catch_exceptions=False)


def _trace(tmp_path: Path) -> Path:
    rows = [
        f"2023-11-16 18:{m:02d}:{s:02d}.0000000,800,12" for m in range(3) for s in range(0, 60, 3)
    ]
    path = tmp_path / "trace.csv"
    path.write_text("TIMESTAMP,ContextTokens,GeneratedTokens\n" + "\n".join(rows) + "\n")
    return path


def test_cli_prints_the_report_as_json_and_plots(tmp_path: Path) -> None:
    png = tmp_path / "replay.png"
    result = _cli("simulate", "--trace", str(_trace(tmp_path)), "--json", "--plot", str(png))
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["requests"] == 60
    assert set(report["cost"]) == {"medicine", "law", "finance", "code", "generalist"}
    assert png.read_bytes()[:4] == b"\x89PNG"


def test_cli_names_the_bad_row_and_the_missing_plotter(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    bad = tmp_path / "bad.csv"
    bad.write_text("TIMESTAMP,ContextTokens,GeneratedTokens\n2023-11-16 18:17:03,12,many\n")
    result = _cli("simulate", "--trace", str(bad))
    assert result.exit_code == 2
    assert f"{bad}:2: GeneratedTokens" in result.output
    monkeypatch.setitem(__import__("sys").modules, "matplotlib", None)
    result = _cli("simulate", "--trace", str(_trace(tmp_path)), "--plot", str(tmp_path / "x.png"))
    assert result.exit_code == 1
    assert "--plot needs matplotlib" in result.output
