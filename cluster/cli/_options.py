"""Options shared by several ``garden`` commands."""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

import click

from cluster.config import GardenConfig, load_config

if TYPE_CHECKING:
    from cluster.lifecycle import RunState

__all__ = ["config_option", "load"]

F = TypeVar("F", bound=Callable[..., Any])


def config_option(fn: F) -> F:
    """``--config FILE``; the embedded default garden when omitted."""
    return click.option(
        "--config",
        "config_path",
        type=click.Path(dir_okay=False, path_type=str),
        default=None,
        envvar="GARDEN_CONFIG",
        help="garden.yaml to use (default: the embedded garden; env GARDEN_CONFIG).",
    )(fn)


def running_garden(*, connected: bool = True) -> RunState:
    """The garden started from this machine, connected to its Ray when ``connected``.

    Exits 1 saying how to start one when there is none.
    """
    from cluster._ray import connect
    from cluster.lifecycle import read_state

    state = read_state()
    if state is None:
        raise click.ClickException("no garden is running from this machine (start one: garden up)")
    if connected:
        connect(state.address)
    return state


def load(config_path: str | None) -> GardenConfig:
    """Load the config, raising ConfigError (exit 2) with key paths."""
    return load_config(config_path)


def api_key_of(garden: GardenConfig) -> str:
    """The key garden tools send: the first of ``router.auth.api_keys_env``, else $OPENAI_API_KEY.

    Empty when neither is set (a garden without ``router.auth``).
    """
    name = garden.router.auth.api_keys_env
    keys = os.environ.get(name, "") if name else ""
    first = next((k.strip() for k in keys.split(",") if k.strip()), "")
    return first or os.environ.get("OPENAI_API_KEY", "")
