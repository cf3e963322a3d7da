"""The CLI's terminal output: rich consoles, tables and progress, plain without a terminal.

Without a terminal (a pipe, a CI log) rich writes no escape codes and no live
display; tables are drawn at a fixed width so that no column is cut.
``--json`` output never goes through here: it stays plain JSON.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from rich.console import Console
    from rich.table import Table

__all__ = ["PLAIN_WIDTH", "StepProgress", "TimedProgress", "console", "table"]

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


class _Bar:
    """A rich progress bar on stderr while a terminal shows it; lines otherwise (subclasses)."""

    def __init__(self, *columns: Any, clock: Callable[[], float] = time.monotonic) -> None:
        from rich.progress import BarColumn, Progress, TimeElapsedColumn

        self._clock = clock
        self._start = clock()
        self._console = console(stderr=True)
        self._bar = Progress(
            columns[0], BarColumn(), *columns[1:], TimeElapsedColumn(), console=self._console
        )
        self._task = self._bar.add_task("", total=None)

    def __enter__(self) -> Any:
        if self._console.is_terminal:
            self._bar.start()
        return self

    def __exit__(self, *_: object) -> None:
        if self._console.is_terminal:
            self._bar.stop()

    def _elapsed(self) -> float:
        return self._clock() - self._start

    def _line(self, text: str) -> None:
        self._console.print(text, highlight=False, markup=False)


class StepProgress(_Bar):
    """A progress callback ``(step, done, total)``: a bar on stderr in a terminal, else lines.

    Without a terminal each new step is one line on stderr, stamped with the
    seconds since the start (``[   12s] title: step (done/total unit)``), so
    a log shows where a long command is. Used as a context manager around
    the work.
    """

    def __init__(
        self, title: str, *, unit: str = "", clock: Callable[[], float] = time.monotonic
    ) -> None:
        from rich.progress import MofNCompleteColumn, TextColumn

        super().__init__(
            TextColumn(f"{title}: " + "{task.description}"), MofNCompleteColumn(), clock=clock
        )
        self._title = title
        self._unit = f" {unit}" if unit else ""
        self._step: str | None = None

    def __call__(self, step: str, done: int, total: int | None) -> None:
        self._bar.update(self._task, description=step, completed=done, total=total)
        if not self._console.is_terminal and step != self._step:
            counted = "" if total is None else f" ({done}/{total}{self._unit})"
            self._line(f"[{self._elapsed():6.0f}s] {self._title}: {step}{counted}")
        self._step = step


class TimedProgress(_Bar):
    """A progress callback ``(elapsed_s, total_s, note)`` for a run of a known length.

    In a terminal, a bar of the seconds run against the planned ones, with
    the latest note (requests so far, say); without one, a line every
    ``every_s`` seconds (and the first), so that a log is not one line a
    second.
    """

    def __init__(
        self, title: str, *, every_s: float = 10.0, clock: Callable[[], float] = time.monotonic
    ) -> None:
        from rich.progress import TextColumn

        super().__init__(
            TextColumn(f"{title}"),
            TextColumn("{task.fields[seconds]}"),
            TextColumn("{task.fields[note]}"),
            clock=clock,
        )
        self._bar.update(self._task, seconds="", note="")
        self._title = title
        self._every_s = every_s
        self._printed: float | None = None

    def __call__(self, elapsed_s: float, total_s: float, note: str) -> None:
        seconds = f"{elapsed_s:.0f}/{total_s:.0f} s"
        self._bar.update(self._task, completed=elapsed_s, total=total_s, seconds=seconds, note=note)
        if self._console.is_terminal:
            return
        if self._printed is None or elapsed_s - self._printed >= self._every_s:
            self._printed = elapsed_s
            self._line(f"[{elapsed_s:5.0f}/{total_s:.0f} s] {self._title}: {note}")
