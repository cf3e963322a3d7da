"""``garden bench``: benchmarks that print JSON (targets are never asserted in tests)."""

from __future__ import annotations

import json

import click

from cluster.cli._main import cli
from cluster.cli._options import config_option, load


@cli.group("bench")
def bench_group() -> None:
    """Benchmarks of the garden."""


@bench_group.command("startup")
@config_option
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
def startup(config_path: str | None, as_json: bool) -> None:
    """Start a fresh garden; report seconds until ready and peak memory of all its processes."""
    from loadtest.bench.startup import run_startup_bench

    result = run_startup_bench(load(config_path))
    if as_json:
        click.echo(json.dumps(result))
    else:
        for key, value in result.items():
            click.echo(f"{key:<16} {value}")
