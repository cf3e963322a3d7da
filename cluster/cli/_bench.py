"""``garden bench``: benchmarks that print JSON (targets are never asserted in tests)."""

from __future__ import annotations

import functools
import json
from typing import TYPE_CHECKING, Any, cast

import click

from cluster.cli._display import StepProgress, TimedProgress, console, table
from cluster.cli._main import cli
from cluster.cli._options import api_key_of, config_option, load, running_garden
from cluster.cli._run import ProgressPrinter
from cluster.exceptions import ClusterError

if TYPE_CHECKING:
    from rich.console import Group


@cli.group("bench")
def bench_group() -> None:
    """Benchmarks of the garden."""


@bench_group.command("startup")
@config_option
@click.option(
    "--all-at-once",
    is_flag=True,
    help="Start every model at once, not the router and the generalist first (the baseline).",
)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
def startup(config_path: str | None, all_at_once: bool, as_json: bool) -> None:
    """Start a fresh garden; report seconds until it serves and is complete, and peak memory.

    \b
    Example:
      garden bench startup --json
    """
    from cluster.lifecycle import down, read_state, up
    from loadtest.bench.startup import run_startup_bench

    garden = load(config_path)
    if read_state() is not None:
        raise ClusterError("a garden is already running here; `garden down` first")
    # The deployments' progress on stderr: stdout stays the result (--json).
    with ProgressPrinter(stderr=True) as progress:
        start = functools.partial(up, on_progress=progress, staged=not all_at_once)
        result = run_startup_bench(garden, start, down)
    if as_json:
        click.echo(json.dumps(result))
    else:
        console().print(table("figure", "value", rows=result.items(), right=1))


@bench_group.command("overhead")
@config_option
@click.option("--model", default="code", show_default=True, help="Specialist to compare on.")
@click.option("--rounds", default=8, show_default=True, type=click.IntRange(1))
@click.option("--concurrency", default=16, show_default=True, type=click.IntRange(1))
@click.option("--tokens", default=32, show_default=True, type=click.IntRange(1))
@click.option(
    "--runs",
    default=1,
    show_default=True,
    type=click.IntRange(1),
    help="Repeat the whole measurement; each ratio is reported as its min, median and max.",
)
@click.option(
    "--client",
    type=click.Choice(["garden", "vllm"]),
    default="garden",
    show_default=True,
    help="Who times the requests: the garden's light client, or vLLM's own benchmark "
    "client (vllm.benchmarks.serve: random 128-token prompts; garden_auto left out).",
)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@click.option("--plot", type=click.Path(dir_okay=False), default=None, help="Write a PNG chart.")
def overhead(
    config_path: str | None,
    model: str,
    rounds: int,
    concurrency: int,
    tokens: int,
    runs: int,
    client: str,
    as_json: bool,
    plot: str | None,
) -> None:
    """Garden vs Ray Serve LLM vs bare vLLM on one model, in alternating rounds.

    \b
    Example:
      garden bench overhead --runs 3 --json > overhead.json
      garden bench overhead --client vllm --rounds 3 --runs 3 --json
    """
    from cluster._ray import connect
    from cluster.lifecycle import down, read_state, run_dir, status, up
    from loadtest.bench.overhead import Client, run_overhead_bench

    garden = load(config_path)
    if model not in {m.name for m in garden.models}:
        raise click.BadParameter(f"no such model {model!r}", param_hint="--model")
    state = read_state()
    started = False
    try:
        connect(state.address) if state else None
        status(state.app) if state else None
    except ClusterError:
        state = None
    if state is None:
        click.echo("starting the garden ...", err=True)
        state, started = up(garden), True
    try:
        with StepProgress("bench overhead") as progress:
            result = run_overhead_bench(
                garden, state.endpoint, model=model, rounds=rounds, concurrency=concurrency,
                tokens=tokens, log_dir=run_dir(), api_key=api_key_of(garden), progress=progress,
                runs=runs, client=cast("Client", client),
            )  # fmt: skip
    finally:
        if started:
            down()
    if plot:
        from loadtest.bench.plot import plot_overhead

        plot_overhead(result, plot)
    if as_json:
        click.echo(json.dumps(result))
    else:
        console().print(_overhead_table(result))


@bench_group.command("soak")
@config_option
@click.option("--minutes", default=10.0, show_default=True, type=click.FloatRange(0.1))
@click.option(
    "--users",
    default=None,
    type=click.IntRange(1),
    help="Locust users (default: every model's target load at its floor, near capacity).",
)
@click.option("--max-tokens", default=32, show_default=True, type=click.IntRange(1))
@click.option(
    "--out",
    type=click.Path(file_okay=False),
    default=None,
    help="Where Locust's reports go (default: <run dir>/soak).",
)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
def soak(
    config_path: str | None,
    minutes: float,
    users: int | None,
    max_tokens: int,
    out: str | None,
    as_json: bool,
) -> None:
    """Load the running garden near capacity for minutes; report errors, growth, leftovers.

    \b
    Example:
      garden bench soak --minutes 10 --json
    """
    from pathlib import Path

    from cluster.lifecycle import run_dir
    from loadtest.bench.soak import run_soak

    garden = load(config_path)
    state = running_garden()
    folder = Path(out) if out else run_dir() / "soak"
    with TimedProgress("soak", every_s=60) as progress:
        result = run_soak(
            garden,
            state.endpoint,
            minutes=minutes,
            out=folder,
            users=users,
            max_tokens=max_tokens,
            api_key=api_key_of(garden),
            app=state.app,
            metrics_url=state.metrics_url,
            progress=None if as_json else progress,
        )
    if as_json:
        click.echo(json.dumps(result))
        return
    p99 = result["p99_ttft_ms"]
    rss = result["router_rss_mib"]
    rows = [
        ("requests", result["requests"]),
        ("errors", result["errors"]),
        ("throughput (req/s)", result["throughput_rps"]),
        ("router RSS first / last (MiB)", f"{rss['first']} / {rss['last']}"),
        ("router RSS growth (MiB / 1k requests)", result["router_rss_growth_mib_per_1k"]),
        ("engine requests left running", result["left_running"]),
        ("p99 TTFT first / last minute (ms)", f"{p99['first_minute']} / {p99['last_minute']}"),
        ("p99 drift (last / first)", p99["drift"]),
    ]
    title = f"soak of garden {garden.name!r}: {minutes:g} min, {result['users']} users"
    console().print(table("measure", "value", rows=rows, title=title, right=1))


def _overhead_table(result: dict[str, Any]) -> Group:
    from rich.console import Group

    setups = table(
        "setup",
        "p50/p99 TTFT ms",
        "p50/p99 ITL ms",
        "p50/p99 e2e ms",
        "req/s",
        "failures",
        rows=[
            (
                name,
                f"{s.get('p50_ttft_ms')}/{s.get('p99_ttft_ms')}",
                f"{s.get('p50_itl_ms')}/{s.get('p99_itl_ms')}",
                f"{s.get('p50_e2e_ms')}/{s.get('p99_e2e_ms')}",
                s.get("throughput_rps"),
                s["failures"],
            )
            for name, s in result["setups"].items()
        ],
        right=5,
    )
    runs = result["settings"]["runs"]
    ratios = table(
        "ratio",
        *result["ratios"][next(iter(result["ratios"]))],
        rows=[(name, *(_spread(v) for v in r.values())) for name, r in result["ratios"].items()],
        title=f"median (min to max) of {runs} run{'s' if runs > 1 else ''}",
        right=len(result["ratios"][next(iter(result["ratios"]))]),
    )
    return Group(setups, ratios)


def _spread(value: dict[str, float] | None) -> str:
    if value is None:
        return "-"
    if value["min"] == value["max"]:
        return f"{value['median']}"
    return f"{value['median']} ({value['min']} to {value['max']})"
