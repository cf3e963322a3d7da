"""``garden config``: the config schema and validation."""

from __future__ import annotations

import json

import click

from cluster.cli._main import cli
from cluster.cli._options import load
from cluster.config import GardenConfig, default_config_text


@cli.group("config")
def config_group() -> None:
    """Inspect and check garden configs."""


@config_group.command("schema")
def schema() -> None:
    """Print the JSON Schema of garden.yaml.

    \b
    Example:
      garden config schema > garden.schema.json
    """
    click.echo(json.dumps(GardenConfig.model_json_schema(), indent=2))


@config_group.command("validate")
@click.argument("file", type=click.Path(dir_okay=False, path_type=str))
def validate(file: str) -> None:
    """Validate FILE; exit 2 with the key path of every problem.

    \b
    Example:
      garden config validate garden.yaml
    """
    cfg = load(file)
    roles = ", ".join(f"{m.name} ({m.role})" for m in cfg.models)
    click.echo(f"{file}: valid garden {cfg.name!r} with {len(cfg.models)} models: {roles}")


@config_group.command("default")
def default() -> None:
    """Print the embedded default garden.yaml (a starting point for your own).

    \b
    Example:
      garden config default > garden.yaml
    """
    click.echo(default_config_text(), nl=False)
