"""``garden up``, ``garden status`` and ``garden down``."""

from __future__ import annotations

import json
import time
from typing import Any

import click

from cluster.cli._display import console, table
from cluster.cli._main import cli
from cluster.cli._options import config_option, load, running_garden
from cluster.lifecycle import DeploymentProgress, down, status, up


class ProgressPrinter:
    """Shows each deployment's start: a bar per deployment in a terminal, else lines.

    A bar moves through each replica's stages (placing, loading weights,
    engine up, healthy; ``cluster.startup``) and names the least advanced
    replica's stage, with replicas running against the target. Without a
    terminal (a log) a line is printed whenever a deployment's stage,
    status or replica count changes. Used as a context manager around the
    wait.
    """

    def __init__(self, *, stderr: bool = False) -> None:
        from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

        self._start = time.monotonic()
        self._last: dict[str, tuple[str, str, int, int]] = {}
        self._stderr = stderr
        self._console = console(stderr=stderr)
        self._bars = Progress(
            TextColumn("{task.description:<12}"),
            BarColumn(),
            TextColumn("{task.fields[stage]:<15}"),
            TextColumn("{task.fields[replicas]} replicas"),
            TextColumn("{task.fields[status]}"),
            TimeElapsedColumn(),
            console=self._console,
        )
        self._tasks: dict[str, Any] = {}

    def __enter__(self) -> ProgressPrinter:
        if self._console.is_terminal:
            self._bars.start()
        return self

    def __exit__(self, *_: object) -> None:
        if self._console.is_terminal:
            self._bars.stop()

    def note(self, text: str) -> None:
        """Print one line above the bars (or among the lines, without a terminal)."""
        self._console.print(text, highlight=False, markup=False)

    def __call__(self, progress: list[DeploymentProgress]) -> None:
        for p in progress:
            key = (p.stage, p.status, p.running, p.target)
            if self._last.get(p.name) == key:
                continue
            self._last[p.name] = key
            replicas = f"{p.running}/{p.target}"
            if not self._console.is_terminal:
                elapsed = time.monotonic() - self._start
                click.echo(
                    f"  [{elapsed:5.0f}s] {p.name:<12} {p.stage:<15} {replicas} replicas "
                    f"({p.status})",
                    err=self._stderr,
                )
                continue
            if p.name not in self._tasks:
                self._tasks[p.name] = self._bars.add_task(
                    p.name, total=None, stage="", replicas="", status=""
                )
            done, total = p.steps
            self._bars.update(
                self._tasks[p.name],
                completed=done,
                total=total,
                stage=p.stage,
                replicas=replicas,
                status=p.status,
            )


def _table(progress: list[DeploymentProgress]) -> Any:
    return table(
        "deployment",
        "status",
        "replicas",
        "stage",
        "message",
        rows=[(p.name, p.status, f"{p.running}/{p.target}", p.stage, p.message) for p in progress],
    )


@cli.command("up")
@config_option
@click.option(
    "--address",
    default=None,
    help="Join the Ray cluster at this address instead "
    "of starting a local one (e.g. 'auto' or 'ray://head:10001').",
)
@click.option(
    "--timeout",
    "timeout_s",
    default=900.0,
    show_default=True,
    help="Seconds to wait for every model to become healthy.",
)
def up_cmd(config_path: str | None, address: str | None, timeout_s: float) -> None:
    """Start the garden and wait until every model is healthy.

    \b
    Example:
      garden up --config garden.yaml
    """
    garden = load(config_path)
    where = address or "a local Ray"
    click.echo(f"garden up: deploying {garden.name!r} ({len(garden.models)} models) on {where}")
    start = time.monotonic()
    with ProgressPrinter() as progress:

        def serving() -> None:
            progress.note(
                f"garden {garden.name!r} is serving after {time.monotonic() - start:.0f}s: "
                "auto covers the models still starting with the generalist"
            )

        state = up(
            garden, address=address, timeout_s=timeout_s, on_progress=progress, on_serving=serving
        )
    click.echo(f"garden {garden.name!r} is complete in {time.monotonic() - start:.0f}s")
    click.echo(f"  endpoint: {state.endpoint}")
    click.echo(f"  models:   {', '.join(m.name for m in garden.models)}")
    click.echo("  status: garden status    stop: garden down")


@cli.command("status")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
def status_cmd(as_json: bool) -> None:
    """Show every deployment of the running garden: status and replicas.

    \b
    Example:
      garden status --json
    """

    state = running_garden()
    progress = status(state.app)
    if as_json:
        click.echo(
            json.dumps(
                {"endpoint": state.endpoint, "deployments": [p.__dict__ for p in progress]},
                indent=2,
            )
        )
    else:
        out = console()
        out.print(f"garden {state.app!r} at {state.endpoint}")
        out.print(_table(progress))


@cli.command("down")
@click.option(
    "--drain-timeout",
    "drain_s",
    default=30.0,
    show_default=True,
    type=click.FloatRange(0),
    help="Seconds requests in flight may take to finish before engines are killed (0: none).",
)
def down_cmd(drain_s: float) -> None:
    """Stop the garden and every engine process it started, after its requests finish.

    \b
    Example:
      garden down --drain-timeout 60
    """
    survivors = down(drain_s=drain_s)
    if survivors:
        raise click.ClickException(f"processes survived SIGKILL: {survivors}")
    click.echo("garden is down")
