"""``garden models``: local checkpoints."""

from __future__ import annotations

import click

from cluster.cli._display import console, table
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
    out = console()
    rows = []
    # A spinner per step in a terminal (nothing without one); the table after.
    with out.status("building the tiny checkpoints") as step:
        results = []
        for spec in garden.models:
            if spec.tiny is not None:
                step.update(f"checkpoint {spec.name}")
                results += build_missing(garden.model_copy(update={"models": [spec]}), force=force)
        rows += [(r.model, "built" if r.built else "up to date", str(r.path)) for r in results]
        step.update("fitting the router's classifier")
        started = time.monotonic()
        build_classifier(garden)
        rows.append(("router", "classifier", f"ready in {time.monotonic() - started:.1f} s"))
    if not results:
        click.echo("no model has a `tiny` section; nothing to build")
    out.print(table("model", "state", "where", rows=rows))
