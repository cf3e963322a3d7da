"""Reading JSON Lines as the format defines them: records end at ``\\n`` only.

``str.splitlines()`` also splits at U+0085, U+2028, U+2029, form feeds and
other separators, which JSON allows unescaped inside strings and which real
datasets contain; a reader that uses it tears such a record in two. Every
JSONL reader of the garden goes through this module.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from cluster.exceptions import DataFileError

__all__ = ["json_lines", "read_jsonl", "split_records"]


def split_records(text: str) -> list[str]:
    """The lines of ``text``, split at ``\\n`` only (a trailing ``\\r`` is dropped)."""
    return [line.removesuffix("\r") for line in text.split("\n")]


def json_lines(path: Path) -> Iterator[tuple[int, Any]]:
    """``(line number, value)`` of each non-blank line of ``path``.

    Raises :class:`~cluster.exceptions.DataFileError` naming the file and
    line of the first record that is not JSON.
    """
    text = path.read_text(encoding="utf-8")
    for number, line in enumerate(split_records(text), 1):
        if not line.strip():
            continue
        try:
            yield number, json.loads(line)
        except json.JSONDecodeError as err:
            raise DataFileError(f"{path}:{number}: not JSON ({err.msg})") from err


def read_jsonl(path: Path, *, skip_invalid: bool = False) -> list[Any]:
    """Every value in ``path``; with ``skip_invalid``, lines that are not JSON are skipped.

    Skipping suits files a process appends to: a writer killed mid-line
    leaves a torn last record.
    """
    if not skip_invalid:
        return [value for _, value in json_lines(path)]
    values = []
    for line in split_records(path.read_text(encoding="utf-8")):
        try:
            values.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return values
