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

__all__ = ["PLAIN_WIDTH", "console", "table"]

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
