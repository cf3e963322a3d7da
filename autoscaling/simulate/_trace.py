"""Trace readers: request arrivals with their prompt and output sizes (pure parsing).

Two public formats are read:

- ``azure``: the Azure LLM inference trace CSV, ``TIMESTAMP,ContextTokens,
  GeneratedTokens`` with timestamps like ``2023-11-16 18:17:03.9799600``;
- ``mooncake``: Mooncake's JSONL, one ``{"timestamp": ms since start,
  "input_length", "output_length", "hash_ids": [...]}`` per line.

Arrivals become seconds since the earliest row (the first row of a sorted
trace). A malformed row raises :class:`TraceError` naming the file, the line
and the bad value; nothing is skipped silently.
"""

from __future__ import annotations

import csv
import json
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

__all__ = ["FORMATS", "MOONCAKE_BLOCK_TOKENS", "Request", "TraceError", "TraceFormat", "read_trace"]

#: Prompt tokens per block of a Mooncake trace's ``hash_ids`` (its published block size).
MOONCAKE_BLOCK_TOKENS = 512

TraceFormat = Literal["azure", "mooncake"]
FORMATS: tuple[TraceFormat, ...] = ("azure", "mooncake")

_AZURE_COLUMNS = ("TIMESTAMP", "ContextTokens", "GeneratedTokens")
# Seven fractional digits are common in the Azure traces; datetime takes six,
# so the seconds are parsed as a float instead.
_STAMP = re.compile(r"^(\d{4})-(\d{2})-(\d{2})[ T](\d{2}):(\d{2}):(\d{2}(?:\.\d+)?)$")


class TraceError(ValueError):
    """A trace row that cannot be read: ``file:line: message``."""

    def __init__(self, path: str, line: int, message: str) -> None:
        super().__init__(f"{path}:{line}: {message}")
        self.path, self.line = path, line


@dataclass(frozen=True, slots=True)
class Request:
    """One request of a trace: when it arrives and how many tokens it reads and writes."""

    arrival_s: float
    input_tokens: int
    output_tokens: int
    #: The prompt's blocks as hashes of the prefix up to each (Mooncake's
    #: ``hash_ids``): two prompts share their first k blocks when their
    #: first k hashes are equal. Empty when the trace has none (Azure).
    blocks: tuple[int, ...] = ()


def _count(value: Any, name: str, path: str, line: int) -> int:
    # bool is an int in Python; a JSON true is not a token count.
    if isinstance(value, bool):
        raise TraceError(path, line, f"{name} must be a non-negative integer, got {value!r}")
    if isinstance(value, str):
        value = value.strip()
        if not value.isdigit():
            raise TraceError(path, line, f"{name} must be a non-negative integer, got {value!r}")
        return int(value)
    if isinstance(value, int) and value >= 0:
        return value
    if isinstance(value, float) and value.is_integer() and value >= 0:
        return int(value)
    raise TraceError(path, line, f"{name} must be a non-negative integer, got {value!r}")


def _stamp_s(text: str, path: str, line: int) -> tuple[int, float]:
    m = _STAMP.match(text.strip())
    if m is None:
        raise TraceError(
            path, line, f"TIMESTAMP must look like '2023-11-16 18:17:03.9799600', got {text!r}"
        )
    y, mo, d, h, mi = (int(g) for g in m.groups()[:5])
    try:
        minute = int(datetime(y, mo, d, h, mi, tzinfo=UTC).timestamp())
    except ValueError as err:
        raise TraceError(path, line, f"TIMESTAMP {text!r} is not a date: {err}") from None
    seconds = float(m.group(6))
    if seconds >= 61:
        raise TraceError(path, line, f"TIMESTAMP {text!r} has {seconds} seconds")
    # Whole epoch seconds and the seconds within the minute apart: their sum
    # as one float would lose the 100 ns digits.
    return minute, seconds


_Row = tuple[tuple[int, float], int, int, tuple[int, ...]]


def _azure(path: str, lines: Iterable[str]) -> Iterator[_Row]:
    reader = csv.reader(lines)
    header = next(reader, None)
    if header is None:
        raise TraceError(path, 1, "empty file; expected the header " + ",".join(_AZURE_COLUMNS))
    names = [h.strip() for h in header]
    missing = [c for c in _AZURE_COLUMNS if c not in names]
    if missing:
        raise TraceError(path, 1, f"header {names} lacks the columns {missing}")
    at = [names.index(c) for c in _AZURE_COLUMNS]
    for row in reader:
        line = reader.line_num
        if not row or all(not cell.strip() for cell in row):
            continue
        if len(row) != len(names):
            raise TraceError(path, line, f"expected {len(names)} fields, got {len(row)}: {row}")
        stamp, ctx, gen = (row[i] for i in at)
        yield (
            _stamp_s(stamp, path, line),
            _count(ctx, "ContextTokens", path, line),
            _count(gen, "GeneratedTokens", path, line),
            (),
        )


def _mooncake(path: str, lines: Iterable[str]) -> Iterator[_Row]:
    for line, text in enumerate(lines, start=1):
        if not text.strip():
            continue
        try:
            row = json.loads(text)
        except json.JSONDecodeError as err:
            raise TraceError(path, line, f"not JSON ({err.msg}): {text.strip()[:80]!r}") from None
        if not isinstance(row, dict):
            raise TraceError(path, line, f"expected a JSON object, got {row!r}")
        missing = [k for k in ("timestamp", "input_length", "output_length") if k not in row]
        if missing:
            raise TraceError(path, line, f"missing {missing} in {sorted(row)}")
        stamp = row["timestamp"]
        if isinstance(stamp, bool) or not isinstance(stamp, int | float) or stamp < 0:
            raise TraceError(path, line, f"timestamp must be ms >= 0, got {stamp!r}")
        hashes = row.get("hash_ids", [])
        if not isinstance(hashes, list) or not all(
            isinstance(h, int) and not isinstance(h, bool) for h in hashes
        ):
            raise TraceError(path, line, f"hash_ids must be a list of integers, got {hashes!r}")
        yield (
            (0, float(stamp) / 1000.0),
            _count(row["input_length"], "input_length", path, line),
            _count(row["output_length"], "output_length", path, line),
            tuple(hashes),
        )


def read_trace(path: str | Path, fmt: TraceFormat) -> list[Request]:
    """Every request of the trace at ``path``, in arrival order (seconds since the first).

    Raises :class:`TraceError` (``file:line: what is wrong``) on a malformed
    row, and ``ValueError`` on an unknown format or a trace with no request.
    """
    if fmt not in FORMATS:
        raise ValueError(f"unknown trace format {fmt!r}; expected one of {list(FORMATS)}")
    name = str(path)
    with open(path, encoding="utf-8", newline="") as f:
        rows = list(_azure(name, f) if fmt == "azure" else _mooncake(name, f))
    if not rows:
        raise ValueError(f"{name}: the trace has no request")
    # Sorted (stably) so a slightly out-of-order log still replays in time order.
    rows.sort(key=lambda r: r[0])
    (m0, s0) = rows[0][0]
    # Rounded to the Azure trace's 100 ns resolution: no float noise in replays.
    return [
        Request(round((m - m0) + (s - s0), 7), n_in, n_out, blocks)
        for (m, s), n_in, n_out, blocks in rows
    ]
