"""The CLI's terminal output: rich consoles, tables and progress, plain without a terminal.

Without a terminal (a pipe, a CI log) rich writes no escape codes and no live
display; tables are drawn at a fixed width so that no column is cut.
``--json`` output never goes through here: it stays plain JSON.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from rich.console import Console
    from rich.table import Table

__all__ = ["PLAIN_WIDTH", "StepProgress", "console", "table"]

#: Columns of a table when no terminal says how wide it is.
PLAIN_WIDTH = 160


def console(*, stderr: bool = False) -> Console:
    """A console on stdout (or stderr): the terminal's width, or :data:`PLAIN_WIDTH`."""
    from rich.console import Console

    found = Console(stderr=stderr)
    return found if found.is_terminal else Console(stderr=stderr, width=PLAIN_WIDTH)


def table(
    *columns: str, rows: Iterable[Iterable[Any]] = (), title: str | None = None, right: int = 0
) -> Table:
    """A rich table of ``columns`` holding ``rows``; the last ``right`` columns align right."""
    from rich.table import Table

    out = Table(title=title)
    for i, column in enumerate(columns):
        out.add_column(column, justify="right" if i >= len(columns) - right else "left")
    for row in rows:
        out.add_row(*(str(cell) for cell in row))
    return out


class StepProgress:
    """A progress callback ``(step, done, total)``: a bar on stderr in a terminal, else lines.

    Without a terminal each new step is one line on stderr, so a log shows
    where a long command is. Used as a context manager around the work.
    """

    def __init__(self, title: str) -> None:
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
        )

        self._console = console(stderr=True)
        self._bar = Progress(
            TextColumn(f"{title}: " + "{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=self._console,
        )
        self._task = self._bar.add_task("", total=None)
        self._step = ""

    def __enter__(self) -> StepProgress:
        if self._console.is_terminal:
            self._bar.start()
        return self

    def __exit__(self, *_: object) -> None:
        if self._console.is_terminal:
            self._bar.stop()

    def __call__(self, step: str, done: int, total: int | None) -> None:
        self._bar.update(self._task, description=step, completed=done, total=total)
        if not self._console.is_terminal and step != self._step:
            counted = "" if total is None else f" ({done}/{total})"
            self._console.print(f"{step}{counted}", highlight=False)
        self._step = step
