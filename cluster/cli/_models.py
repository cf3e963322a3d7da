"""``garden models``: local checkpoints."""

from __future__ import annotations

import click

from cluster.cli._main import cli
from cluster.cli._options import config_option, load


@cli.group("models")
def models_group() -> None:
    """Manage the garden's local model checkpoints."""


@models_group.command("build")
@config_option
@click.option("--force", is_flag=True, help="Rebuild even when up to date.")
def build(config_path: str | None, force: bool) -> None:
    """Build the tiny local checkpoints, and fit the router's classifier into its cache.

    The router loads a cached fit at start-up instead of fitting for tens of
    seconds on every replica start.

    \b
    Example:
      garden models build --force
    """
    import time

    from deployments.tiny import build_missing
    from router.classify import build_classifier

    garden = load(config_path)
    results = build_missing(garden, force=force)
    if not results:
        click.echo("no model has a `tiny` section; nothing to build")
    for r in results:
        click.echo(f"{r.model:<12} {'built' if r.built else 'up to date':<10} {r.path}")
    started = time.monotonic()
    build_classifier(garden)
    click.echo(f"{'router':<12} {'classifier':<10} ready in {time.monotonic() - started:.1f} s")
