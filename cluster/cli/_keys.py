"""``garden keys usage``: each API key's requests, tokens and spend (``router.auth``)."""

from __future__ import annotations

import asyncio
import json
import os

import click

from cluster.cli._main import cli
from cluster.cli._options import config_option, load, running_garden


@cli.group("keys")
def keys_group() -> None:
    """The running garden's API keys (router.auth)."""


@keys_group.command("usage")
@config_option
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
def usage_cmd(config_path: str | None, as_json: bool) -> None:
    """Requests, prompt and completion tokens, and spend of every key that has been used.

    Read from the quota store every router replica writes (router.auth.store):
    the garden's Ray actor, or Redis. Spend is each request's share of its
    model's cost_per_hour, from the garden's service profile.

    \b
    Example:
      garden keys usage --json
    """
    from cluster.counters import counters_for
    from router.quota import usage_of_keys

    garden = load(config_path)
    store = garden.router.auth.store
    if store.kind == "ray":
        running_garden()  # the counters are in its Ray actor
    counters = counters_for(
        store.kind, garden.name, os.environ, url_env=store.redis_url_env, timeout_s=10
    )

    async def read() -> dict[str, dict[str, float]]:
        try:
            return await usage_of_keys(counters, garden.name)
        finally:
            await counters.close()

    usage = asyncio.run(read())
    if as_json:
        click.echo(json.dumps({"keys": usage}, indent=2))
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"API key usage of garden {garden.name!r}")
    for column in ("key", "requests", "prompt tokens", "completion tokens", "spend"):
        table.add_column(column, justify="left" if column == "key" else "right")
    for name, row in usage.items():
        table.add_row(
            name,
            f"{row['requests']:.0f}",
            f"{row['prompt_tokens']:.0f}",
            f"{row['completion_tokens']:.0f}",
            f"{row['spend']:.6f}",
        )
    Console().print(table)
