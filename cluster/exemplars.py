"""Exemplar files: the example prompts a model's domain is learned from.

Two formats, told apart by the file's suffix:

* ``.jsonl``: one ``{"text": ..., "source": ...}`` object per line. A text
  may span lines (pasted code, documents); ``source`` names the style or
  origin of the exemplar ("exam-mc", "raw", ...), so that validation can
  hold out whole styles at a time (leave-one-source-out).
* anything else: one prompt per line, every line of source ``file``.

``garden up`` reads every model's file while it loads the config, so a
malformed file is a config error before anything starts.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from cluster.exceptions import DataFileError
from cluster.jsonl import json_lines, split_records

__all__ = ["PLAIN_SOURCE", "Exemplar", "read_exemplars"]

#: The source of every line of a one-prompt-per-line file.
PLAIN_SOURCE = "file"


@dataclass(frozen=True, slots=True)
class Exemplar:
    """One example prompt and the style or origin it was written in."""

    text: str
    source: str


def read_exemplars(path: Path) -> list[Exemplar]:
    """The exemplars in ``path``; :class:`DataFileError` names the first bad line."""
    if path.suffix.lower() != ".jsonl":
        lines = split_records(path.read_text(encoding="utf-8"))
        return [Exemplar(line.strip(), PLAIN_SOURCE) for line in lines if line.strip()]
    out = []
    for number, row in json_lines(path):
        where = f"{path}:{number}"
        if not isinstance(row, dict) or set(row) - {"text", "source"} or "text" not in row:
            raise DataFileError(f'{where}: rows are {{"text", "source"}} objects (got {row!r:.80})')
        text, source = row["text"], row.get("source", PLAIN_SOURCE)
        if not isinstance(text, str) or not text.strip():
            raise DataFileError(f"{where}: text must be a non-empty string (got {text!r:.80})")
        if not isinstance(source, str) or not source:
            raise DataFileError(f"{where}: source must be a non-empty string (got {source!r})")
        out.append(Exemplar(text.strip(), source))
    return out
