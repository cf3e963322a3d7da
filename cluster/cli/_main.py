"""``garden``: run, inspect and benchmark a model garden."""

from __future__ import annotations

import sys
from typing import NoReturn

import click

from cluster.exceptions import ConfigError, GardenError

__all__ = ["main"]

#: Exit code of a bad config or bad usage, as argparse and click use.
EXIT_USAGE = 2


class _GardenGroup(click.Group):
    """Turns garden errors into one clear message and an exit code."""

    def invoke(self, ctx: click.Context) -> object:
        try:
            return super().invoke(ctx)
        except ConfigError as err:
            _fail(str(err), EXIT_USAGE)
        except GardenError as err:
            _fail(str(err), 1)


def _fail(message: str, code: int) -> NoReturn:
    click.secho(f"error: {message}", fg="red", err=True)
    sys.exit(code)


@click.group(cls=_GardenGroup)
@click.version_option(package_name="model-garden")
def cli() -> None:
    """Model Garden: specialized-first serving of many LLMs on Ray Serve and vLLM."""


def register_commands() -> None:
    """Import every command module: each adds its commands to :data:`cli`."""
    from cluster.cli import (  # noqa: F401
        _bench,
        _config,
        _k8s,
        _keys,
        _loadtest,
        _models,
        _profile,
        _route,
        _run,
        _simulate,
        _top,
    )


def main() -> None:
    """Console-script entry point."""
    register_commands()
    cli(prog_name="garden")
