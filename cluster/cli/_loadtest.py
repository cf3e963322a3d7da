"""``garden loadtest``: Locust headless against the running garden, with ``summary.json``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

from cluster.cli._display import TimedProgress, console, table
from cluster.cli._main import cli
from cluster.cli._options import api_key_of, config_option, load, running_garden


def _duration(ctx: click.Context, param: click.Parameter, value: str) -> float:
    from loadtest.run import parse_duration

    try:
        return parse_duration(value)
    except ValueError as err:
        raise click.BadParameter(str(err)) from err


def _weights(ctx: click.Context, param: click.Parameter, value: str) -> str:
    from loadtest.prompts import parse_weights

    try:
        parse_weights(value)
    except ValueError as err:
        raise click.BadParameter(str(err)) from err
    return value


@cli.command("loadtest")
@config_option
@click.option("--users", default=4, show_default=True, type=click.IntRange(1),
              help="Concurrent users (the burst size with --shape burst).")  # fmt: skip
@click.option("--rate", default=0.0, show_default=True, type=click.FloatRange(0),
              help="Requests/s for all users together; 0: each user back to back.")  # fmt: skip
@click.option("--duration", default="60s", show_default=True, callback=_duration,
              help="How long to run: 60s, 2m, 1h30m.")  # fmt: skip
@click.option("--shape", type=click.Choice(["steady", "burst"]), default="steady",
              show_default=True, help="steady users, or bursts between idle times.")  # fmt: skip
@click.option("--burst", "burst_s", default=10.0, show_default=True, type=click.FloatRange(0.1),
              help="Seconds of each burst (--shape burst).")  # fmt: skip
@click.option("--idle", "idle_s", default=10.0, show_default=True, type=click.FloatRange(0),
              help="Seconds without users between bursts (--shape burst).")  # fmt: skip
@click.option("--model", default="auto", show_default=True, help="Model to request.")
@click.option("--weights", default="", callback=_weights,
              help="Prompt domain mix, e.g. medicine=2,law=1,code=1 (default: equal).")  # fmt: skip
@click.option("--max-tokens", default=64, show_default=True, type=click.IntRange(1))
@click.option("--turns", default=1, show_default=True, type=click.IntRange(1),
              help="Turns per conversation: each request carries the earlier "
                   "turns and answers (1: every request a new chat).")  # fmt: skip
@click.option("--out", type=click.Path(file_okay=False, path_type=Path),
              default=Path("loadtest-report"), show_default=True,
              help="Folder for Locust's CSV and HTML, records.jsonl and summary.json.")  # fmt: skip
@click.option("--json", "as_json", is_flag=True, help="Print summary.json instead of a table.")
def loadtest_cmd(
    config_path: str | None,
    users: int,
    rate: float,
    duration: float,
    shape: str,
    burst_s: float,
    idle_s: float,
    model: str,
    weights: str,
    max_tokens: int,
    turns: int,
    out: Path,
    as_json: bool,
) -> None:
    """Load-test the running garden with Locust; exit 1 if any request failed.

    \b
    Example:
      garden loadtest --users 16 --duration 2m --out results/
    """
    from loadtest.run import LoadTest, run_loadtest
    from loadtest.summary import SLO

    garden = load(config_path)
    state = running_garden(connected=False)
    test = LoadTest(
        host=state.endpoint.removesuffix("/v1"),
        users=users,
        duration_s=duration,
        rate=rate,
        shape=shape,
        model=model,
        weights=weights,
        max_tokens=max_tokens,
        turns=turns,
        burst_s=burst_s,
        idle_s=idle_s,
        api_key=api_key_of(garden),
    )
    slos = {m.name: SLO(m.slo.ttft_ms, m.slo.tpot_ms) for m in garden.models}
    if as_json:
        summary = run_loadtest(test, out, slos)
    else:
        with TimedProgress("loadtest") as progress:
            summary = run_loadtest(test, out, slos, progress=progress)
    if as_json:
        click.echo(json.dumps(summary))
    else:
        _print(summary, out)
    if summary["failures"]["count"] or summary["locust_exit_code"]:
        raise SystemExit(1)


def _print(summary: dict[str, Any], out: Path) -> None:
    click.echo(f"requests {summary['requests']} in {summary['duration_s']} s")
    rows = [
        (key.removesuffix("_ms").upper(), *("-" if summary[key][q] is None else summary[key][q]
                                            for q in ("p50", "p90", "p99")))
        for key in ("ttft_ms", "tpot_ms", "e2e_ms")
    ]  # fmt: skip
    console().print(table("ms", "p50", "p90", "p99", rows=rows, right=3))
    tp, fails, good = summary["throughput"], summary["failures"], summary["goodput"]
    click.echo(
        f"throughput {tp['requests_per_s']} req/s, {tp['output_tokens_per_s']} output tok/s; "
        f"failures {fails['count']} ({fails['share']:.1%}); goodput {good['share']:.1%} "
        f"({good['requests_per_s']} req/s within SLO)"
    )
    for what in ("model", "reason"):
        shares = summary["routing"][what]
        text = ", ".join(f"{k} {v['share']:.0%}" for k, v in shares.items()) or "-"
        click.echo(f"{what:<7}{text}")
    for error, n in fails["errors"].items():
        click.echo(f"failed {n}x: {error}")
    click.echo(f"reports in {out}/ (summary.json, locust.html, locust_stats.csv)")
