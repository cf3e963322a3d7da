"""``garden profile``: measure running models' batching curves into a simulator profile."""

from __future__ import annotations

import datetime
import json
import platform
from pathlib import Path
from typing import Any

import click
import yaml

from cluster.cli._main import cli
from cluster.cli._options import api_key_of, config_option, load, running_garden
from cluster.config import GardenConfig


def _concurrencies(text: str) -> list[int]:
    try:
        values = [int(v) for v in text.split(",") if v.strip()]
    except ValueError as err:
        raise click.BadParameter(f"expected comma-separated integers, got {text!r}") from err
    if not values or min(values) < 1:
        raise click.BadParameter(f"concurrencies must be >= 1, got {text!r}")
    return values


def _replica_facts(app: str, model: str) -> dict[str, Any]:
    from ray import serve

    facts = serve.get_deployment_handle(model, app_name=app).replica_facts
    try:
        return dict(facts.remote().result(timeout_s=60))
    finally:
        facts.shutdown()  # else its metrics pusher outlives a garden that stops


def _max_batch(garden: GardenConfig, model: str) -> int:
    spec = garden.model(model)
    return int(spec.engine.get("max_num_seqs", spec.limits.max_ongoing_requests))


def _header(settings: dict[str, Any]) -> str:
    when = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")
    return (
        "# Service profiles measured by `garden profile` (measured here: "
        f"{platform.node()}, {when}).\n"
        f"# Settings: {json.dumps(settings)}\n"
        "# prefill_tokens_per_s is prompt tokens / client-seen TTFT at the lowest\n"
        "# concurrency; decode rates are per sequence, medians over requests.\n"
    )


@cli.command("profile")
@config_option
@click.option("--model", "models", multiple=True, help="Model to profile (repeat; default all).")
@click.option(
    "--concurrency",
    "concurrency",
    default="1,2,4,8",
    show_default=True,
    help="Comma-separated concurrencies to measure.",
)
@click.option("--prompt-tokens", default=512, show_default=True, type=click.IntRange(1))
@click.option("--output-tokens", default=64, show_default=True, type=click.IntRange(2))
@click.option("--rounds", default=3, show_default=True, type=click.IntRange(1),
              help="Requests each concurrent client sends per concurrency.")  # fmt: skip
@click.option(
    "--out",
    "out",
    type=click.Path(dir_okay=False, path_type=Path),
    default=Path("garden-profile.yaml"),
    show_default=True,
    help="Profile file to write (YAML), for `garden simulate --profile`.",
)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
def profile_cmd(
    config_path: str | None,
    models: tuple[str, ...],
    concurrency: str,
    prompt_tokens: int,
    output_tokens: int,
    rounds: int,
    out: Path,
    as_json: bool,
) -> None:
    """Measure each model's TTFT and decode speed against concurrency; write a profile.

    \b
    Example:
      garden profile --model law --out law-profile.yaml
    """
    from autoscaling.simulate import ProfileSet
    from loadtest.bench.batching import measure_curve, to_profile

    levels = _concurrencies(concurrency)
    garden = load(config_path)
    names = list(models) or [m.name for m in garden.chat_models]
    unknown = sorted(set(names) - {m.name for m in garden.models})
    if unknown:
        raise click.BadParameter(
            f"no such model {unknown}; the garden has {[m.name for m in garden.models]}",
            param_hint="--model",
        )
    state = running_garden()
    report: dict[str, Any] = {}
    for name in names:
        curve = measure_curve(
            state.endpoint,
            name,
            levels,
            prompt_tokens=prompt_tokens,
            output_tokens=output_tokens,
            rounds=rounds,
            api_key=api_key_of(garden),
        )
        facts = _replica_facts(state.app, name)
        profile = to_profile(
            curve,
            max_batch=_max_batch(garden, name),
            cold_start_s=float(facts["cold_start_s"] or 0.0),
            kv_cache_tokens=facts["kv_cache_tokens"],
        )
        report[name] = {"curve": [p.as_dict() for p in curve], "profile": profile}
        if not as_json:
            _print_curve(name, report[name])
    profiles = {"models": {n: r["profile"] for n, r in report.items()}}
    ProfileSet.model_validate(profiles)  # what simulate will read back
    settings = {"prompt_tokens": prompt_tokens, "output_tokens": output_tokens, "rounds": rounds}
    out.write_text(_header(settings) + yaml.safe_dump(profiles, sort_keys=False))
    if as_json:
        click.echo(json.dumps({"out": str(out), "models": report}))
    else:
        click.echo(f"wrote {out}")


def _print_curve(name: str, row: dict[str, Any]) -> None:
    click.echo(f"{name}: cold start {row['profile']['cold_start_s']} s")
    click.echo("  concurrency  ttft p50 ms  ttft p90 ms  decode tok/s/seq  output tok/s")
    for p in row["curve"]:
        click.echo(
            f"  {p['concurrency']:>11}  {p['ttft_p50_ms']:>11}  {p['ttft_p90_ms']:>11}  "
            f"{p['decode_tokens_per_s']:>16}  {p['output_tokens_per_s']:>12}"
        )
