"""``garden simulate``: replay a request trace under an autoscaling policy, offline."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any, cast

import click

from cluster.cli._main import cli
from cluster.cli._options import config_option, load

_FORMATS = ("azure", "mooncake")
_POLICIES = ("garden", "ray-default", "ray-tuned", "static-peak", "static-partition")


def _format_of(trace: Path, fmt: str | None) -> str:
    if fmt is not None:
        return fmt
    by_suffix = {".csv": "azure", ".jsonl": "mooncake", ".json": "mooncake"}
    found = by_suffix.get(trace.suffix.lower())
    if found is None:
        raise click.UsageError(f"cannot tell the format of {trace}; pass --format azure|mooncake")
    return found


def _summary(report: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console()
    console.print(
        f"policy {report['policy']}: {report['requests']} requests, {report['rejected']} "
        f"rejected; TTFT-SLO attainment {report['ttft_slo_attainment']} (flat), "
        f"{report['ttft_slo_attainment_sized']} (sized); specialist share "
        f"{report['specialist_share']}"
    )
    console.print(
        f"ttft p50 {report['ttft_p50_ms']} ms, p99 {report['ttft_p99_ms']} ms; spill fraction "
        f"{report['spill_fraction']}; scale events {report['scale_events']}; cost "
        f"{report['cost_total']} (max rate {report['max_cost_rate']}/h, budget {report['budget']})"
    )
    table = Table("model", "replica-hours", "cost", "attainment", "sized", "share", "target")
    for name, row in report["models"].items():
        table.add_row(
            name,
            str(report["replica_hours"][name]),
            str(report["cost"][name]),
            str(row["ttft_slo_attainment"]),
            str(row["ttft_slo_attainment_sized"]),
            str(row.get("specialist_share", "")),
            str(row["target_ongoing_requests"]),
        )
    console.print(table)


def _comparison(result: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(
        "policy", "attainment (sized)", "attainment (flat)", "cost", "specialist share",
        "spill", "scale events", title=f"garden entry: {result['garden']}",
    )  # fmt: skip
    for name, r in result["policies"].items():
        table.add_row(
            name,
            str(r["ttft_slo_attainment_sized"]),
            str(r["ttft_slo_attainment"]),
            str(r["cost_total"]),
            str(r["specialist_share"]),
            str(r["spill_fraction"]),
            str(r["scale_events"]),
        )
    console = Console()
    console.print(table)
    console.print(result["verdicts"])


@cli.command("simulate")
@click.option(
    "--trace",
    "trace",
    required=True,
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Request trace: Azure CSV or Mooncake JSONL.",
)
@click.option(
    "--format",
    "fmt",
    type=click.Choice(_FORMATS),
    default=None,
    help="Trace format (default: by extension, .csv azure, .jsonl mooncake).",
)
@click.option("--policy", type=click.Choice(_POLICIES), default="garden", show_default=True)
@config_option
@click.option(
    "--profile",
    "profile_path",
    type=click.Path(exists=True, dir_okay=False),
    default=None,
    help="Service profiles, YAML or JSON (default: autoscaling/profiles/default.yaml).",
)
@click.option("--budget", type=float, default=None, help="Overrides budget.max_cost_per_hour.")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the domain mix.")
@click.option("--mix", default=None, help="Domain weights, e.g. 'law=2,code=1,general=1'.")
@click.option(
    "--targets-from",
    "--slots",
    "targets_from",
    type=click.Choice(("profile", "config")),
    default="profile",
    show_default=True,
    help="Requests per replica every policy targets: the profile's capacity at the SLO, "
    "or the config's target_ongoing_requests.",
)
@click.option(
    "--min-replicas",
    type=click.IntRange(min=0),
    default=None,
    help="Override every specialist's min_replicas (the generalist keeps at least 1).",
)
@click.option(
    "--max-replicas",
    type=click.IntRange(min=1),
    default=None,
    help="Override every model's max_replicas.",
)
@click.option(
    "--compare",
    is_flag=True,
    help="Replay garden (specialists at min 1 and 0), ray-default, ray-tuned and "
    "static-peak side by side; --plot draws cost against attainment.",
)
@click.option(
    "--prefix-cache",
    is_flag=True,
    help="Model each replica's prefix cache from the trace's block hashes (Mooncake's "
    "hash_ids): cached prompt blocks skip their prefill. Off by default.",
)
@click.option(
    "--replica-router",
    type=click.Choice(["power_of_two", "prefix_aware"]),
    default=None,
    help="Pick replicas this way for every model (default: each model's replica_router).",
)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@click.option(
    "--plot",
    "plot_path",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Write a PNG of demand vs replicas per model (needs matplotlib).",
)
def simulate_cmd(
    trace: Path,
    fmt: str | None,
    policy: str,
    config_path: str | None,
    profile_path: str | None,
    budget: float | None,
    seed: int,
    mix: str | None,
    targets_from: str,
    min_replicas: int | None,
    max_replicas: int | None,
    compare: bool,
    prefix_cache: bool,
    replica_router: str | None,
    as_json: bool,
    plot_path: Path | None,
) -> None:
    """Replay a trace through a simulated garden and report SLO attainment and cost.

    \b
    Example:
      garden simulate --trace azure_code_2023.csv --policy garden --json
    """
    from autoscaling.simulate import (
        PolicyName,
        ProfileError,
        ReplicaRouter,
        TargetsFrom,
        TraceError,
        TraceFormat,
        load_profiles,
        parse_mix,
        read_trace,
        simulate,
    )

    garden = load(config_path)
    if compare and (prefix_cache or replica_router):
        raise click.UsageError("--prefix-cache and --replica-router replay one policy, not all")
    if plot_path is not None:
        try:
            import matplotlib  # noqa: F401
        except ImportError:
            raise click.ClickException(
                "--plot needs matplotlib: pip install 'model-garden[eval]'"
            ) from None
    try:
        requests = read_trace(trace, cast("TraceFormat", _format_of(trace, fmt)))
        profiles = load_profiles(profile_path)
        weights = parse_mix(mix) if mix is not None else None
        common: dict[str, Any] = {
            "budget": budget,
            "seed": seed,
            "mix": weights,
            "targets_from": cast("TargetsFrom", targets_from),
            "min_replicas": min_replicas,
            "max_replicas": max_replicas,
        }
        start = time.perf_counter()
        if compare:
            from autoscaling.simulate import compare_policies

            result = compare_policies(requests, garden, profiles, **common)
        else:
            result = simulate(
                requests,
                garden,
                profiles,
                policy=cast("PolicyName", policy),
                prefix_cache=prefix_cache,
                replica_router=cast("ReplicaRouter | None", replica_router),
                **common,
            )
        wall_s = time.perf_counter() - start
    except (TraceError, ProfileError, ValueError) as err:
        raise click.UsageError(str(err)) from None
    if plot_path is not None:
        from autoscaling.simulate import plot_comparison, plot_replay

        if compare:
            plot_comparison(result, plot_path, title=f"{trace.name}: cost against attainment")
        else:
            plot_replay(result, plot_path, title=f"{trace.name}: policy {policy}")
    if as_json:
        click.echo(json.dumps(result))
    elif compare:
        _comparison(result)
    else:
        _summary(result)
    print(f"replayed {len(requests)} requests in {wall_s:.1f} s", file=sys.stderr)
