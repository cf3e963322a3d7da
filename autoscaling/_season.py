"""A seasonal predictor: the demand each time of day reached on the days before (pure).

Traffic that follows the clock (a morning ramp, a nightly batch) comes back
at the same time each period. The predictor splits the period
(``period_s``, a day by default) into ``bins`` slots (15 minutes) and keeps,
per slot, the peak wish of each visit, folded into an exponentially weighted
mean over past periods (weight ``alpha`` on the newest, so a changed pattern
takes over within a few days). :meth:`Season.at` gives the expected peak at
any time from the periods that are complete; with none, it says nothing,
and the policy's other rules act alone. A one-hour trace never completes a
day, so the simulator's replays show no effect of it; its unit tests do.

State lives in the policy state Ray hands back (``garden.season``), as
``{slot: [mean or None, period index of the last visit, that visit's peak]}``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

__all__ = ["Season"]

_SEASON = "garden.season"


@dataclass(frozen=True, slots=True)
class Season:
    """A period and its slots; ``alpha`` weighs the newest period's peak."""

    period_s: float = 86_400.0
    bins: int = 96
    alpha: float = 0.5

    def __post_init__(self) -> None:
        if self.period_s <= 0 or self.bins < 1 or not 0 < self.alpha <= 1:
            raise ValueError(
                f"need period_s > 0, bins >= 1, 0 < alpha <= 1; got "
                f"{self.period_s}, {self.bins}, {self.alpha}"
            )

    def _slot(self, t: float) -> tuple[str, int]:
        period = math.floor(t / self.period_s)
        slot = int((t - period * self.period_s) / self.period_s * self.bins) % self.bins
        return str(slot), period

    def _fold(self, mean: float | None, peak: float) -> float:
        return peak if mean is None else (1 - self.alpha) * mean + self.alpha * peak

    def record(self, state: dict[str, Any], now: float, wish: float) -> None:
        """Count ``wish`` at ``now`` toward its slot's peak in this period."""
        table = {k: list(v) for k, v in state.get(_SEASON, {}).items()}
        slot, period = self._slot(now)
        entry = table.get(slot)
        if entry is None:
            table[slot] = [None, period, wish]
        elif entry[1] != period:  # a new visit: the last one is complete
            table[slot] = [self._fold(entry[0], entry[2]), period, wish]
        else:
            entry[2] = max(entry[2], wish)
        state[_SEASON] = table

    def at(self, state: dict[str, Any], t: float) -> float | None:
        """The expected peak wish at time ``t`` from complete past visits (None: none yet)."""
        slot, period = self._slot(t)
        entry = state.get(_SEASON, {}).get(slot)
        if entry is None:
            return None
        mean, seen, peak = entry
        if seen < period:  # its last visit lies in a past period: complete
            return self._fold(mean, peak)
        return None if mean is None else float(mean)
