"""A settable clock for the pure parts that take one injected."""

from __future__ import annotations


class Clock:
    """Returns ``now``; tests move it forward by hand."""

    def __init__(self, now: float = 100.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now
