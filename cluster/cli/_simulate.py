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
_POLICIES = ("garden", "ray-default", "static-peak")


def _format_of(trace: Path, fmt: str | None) -> str:
    if fmt is not None:
        return fmt
    by_suffix = {".csv": "azure", ".jsonl": "mooncake", ".json": "mooncake"}
    found = by_suffix.get(trace.suffix.lower())
    if found is None:
        raise click.UsageError(f"cannot tell the format of {trace}; pass --format azure|mooncake")
    return found


def _summary(report: dict[str, Any]) -> list[str]:
    lines = [
        f"policy {report['policy']}: {report['requests']} requests, "
        f"{report['rejected']} rejected, TTFT-SLO attainment {report['ttft_slo_attainment']}",
        f"ttft p50 {report['ttft_p50_ms']} ms, p99 {report['ttft_p99_ms']} ms; "
        f"spill fraction {report['spill_fraction']}; scale events {report['scale_events']}",
        f"cost {report['cost_total']} (max rate {report['max_cost_rate']}/h, "
        f"budget {report['budget']})",
    ]
    for name, row in report["models"].items():
        lines.append(
            f"  {name:<12} replica-hours {report['replica_hours'][name]:<8} "
            f"cost {report['cost'][name]:<8} attainment {row['ttft_slo_attainment']} "
            f"slots {row['slots']}"
        )
    return lines


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
    "--slots",
    "slots",
    type=click.Choice(("profile", "config")),
    default="profile",
    show_default=True,
    help="Requests per replica every policy targets: the profile's capacity at the SLO, "
    "or the config's target_ongoing_requests.",
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
    slots: str,
    as_json: bool,
    plot_path: Path | None,
) -> None:
    """Replay a trace through a simulated garden and report SLO attainment and cost."""
    from autoscaling.simulate import (
        PolicyName,
        ProfileError,
        SlotsFrom,
        TraceError,
        TraceFormat,
        load_profiles,
        parse_mix,
        read_trace,
        simulate,
    )

    garden = load(config_path)
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
        start = time.perf_counter()
        report = simulate(
            requests,
            garden,
            profiles,
            policy=cast("PolicyName", policy),
            budget=budget,
            seed=seed,
            mix=weights,
            slots=cast("SlotsFrom", slots),
        )
        wall_s = time.perf_counter() - start
    except (TraceError, ProfileError, ValueError) as err:
        raise click.UsageError(str(err)) from None
    if plot_path is not None:
        from autoscaling.simulate import plot_replay

        plot_replay(report, plot_path, title=f"{trace.name}: policy {policy}")
    if as_json:
        click.echo(json.dumps(report))
    else:
        click.echo("\n".join(_summary(report)))
    print(f"replayed {len(requests)} requests in {wall_s:.1f} s", file=sys.stderr)
