"""When the garden policy acts on a wish: cold-start-aware growth, rent-or-buy holding.

Ray acts on a wish after fixed delays (30 s up, 600 s down). The garden knows
each model's cold start from its profile, and uses it both ways (pure; the
clock is the context's, state lives in the policy state Ray hands back):

* **Growth.** A new replica serves one cold start from now, so what matters
  is the demand then. The forecast is the wish extrapolated by its recent
  linear trend (least squares over the last cold start of samples) one cold
  start ahead. The policy grows as soon as the forecast passes capacity,
  before the wish itself does when demand is rising. A wish above capacity
  whose forecast is not (a burst that will be over before a replica is
  ready) is left to the generalist's spare capacity when it has room for the
  overflow, and grown for only when it has not.
* **Holding.** Keeping an idle replica is a rent-or-buy choice. Releasing it
  saves its rent; if demand comes back, a cold start costs the replica's
  start-up time twice (paid for while it does not serve, and the service
  missed meanwhile, valued at ``miss_penalty`` times its price). The policy
  records how long past surpluses lasted before demand came back (the idle
  gaps) and holds for the threshold that minimises the expected cost over
  them. With fewer than ``_MIN_GAPS`` gaps seen it holds for the break-even
  time (a cold start's cost in rent), the classic 2-competitive choice. The
  target is the highest wish within the hold.
* **Seasons.** Where the history shows a daily pattern
  (:class:`~autoscaling._season.Season`: the peak each 15 minutes of the day
  reached on past days), the demand expected one cold start ahead is at
  least that peak: growth comes before a recurring ramp, and a replica due
  to be needed again within a cold start is not released.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from typing import Any

from autoscaling._season import Season

__all__ = ["Timing", "forecast", "hold_for", "timed"]

Policy = Callable[[Any], tuple[float, dict[str, Any]]]

_HISTORY = "garden.timing.history"  # [[t, wish], ...] over the last cold start (growth)
_PEAKS = "garden.timing.peaks"  # [[t, wish], ...] over the longest hold (holding)
_GAPS = "garden.timing.gaps"  # lengths of past idle spells, s
_SPELL = "garden.timing.spell"  # [start, level] of the idle spell under way, or absent
_MIN_GAPS = 3
_MAX_GAPS = 32
_SAMPLES = 24  # samples kept per cold start


def forecast(history: Sequence[Sequence[float]], ahead_s: float) -> float | None:
    """The last sample extrapolated ``ahead_s`` by the least-squares slope; None if < 2."""
    if len(history) < 2:
        return None
    ts = [float(t) for t, _ in history]
    ys = [float(y) for _, y in history]
    mt, my = sum(ts) / len(ts), sum(ys) / len(ys)
    var = sum((t - mt) ** 2 for t in ts)
    slope = 0.0 if var == 0 else sum((t - mt) * (y - my) for t, y in zip(ts, ys, strict=True)) / var
    return max(0.0, ys[-1] + slope * ahead_s)


def hold_for(gaps: Sequence[float], cold_cost_s: float) -> float:
    """Seconds to keep an idle replica, given past idle gaps and a cold start's cost in rent.

    Releasing after ``T`` costs ``g`` for a gap ``g <= T`` (kept through it)
    and ``T + cold_cost_s`` otherwise (kept ``T``, then a cold start). The
    ``T`` among 0 and the gaps with the least total cost wins; with too few
    gaps, the break-even ``cold_cost_s``.
    """
    if len(gaps) < _MIN_GAPS:
        return cold_cost_s
    best_t, best_cost = 0.0, math.inf
    for t in (0.0, *sorted(gaps)):
        cost = sum(g if g <= t else t + cold_cost_s for g in gaps)
        if cost < best_cost - 1e-9:
            best_t, best_cost = t, cost
    return best_t


class Timing:
    """The garden's timing parameters of one model.

    ``cold_start_s`` comes from the profile; ``overflow_room(ctx, excess)``
    says whether the generalist has spare capacity for ``excess`` requests
    beyond this model's capacity (None: never defer growth).
    """

    def __init__(
        self,
        cold_start_s: float,
        target_ongoing_requests: float,
        *,
        miss_penalty: float = 4.0,
        overflow_room: Callable[[Any, float], bool] | None = None,
        clock: Callable[[Any], float] | None = None,
        season: Season | None = None,
    ) -> None:
        if cold_start_s < 0 or miss_penalty < 0:
            raise ValueError(
                f"need cold_start_s, miss_penalty >= 0, got {cold_start_s}, {miss_penalty}"
            )
        self.cold_start_s = cold_start_s
        self.target_ongoing_requests = target_ongoing_requests
        self.cold_cost_s = cold_start_s * (1.0 + miss_penalty)
        self.overflow_room = overflow_room
        self.clock = clock or _context_time
        self.season = season if season is not None else Season()

    @property
    def sample_every_s(self) -> float:
        """Spacing of the growth history's samples."""
        return max(1.0, self.cold_start_s / _SAMPLES)


def _context_time(ctx: Any) -> float:
    now = getattr(ctx, "current_time", None)
    return float(now) if now is not None else time.time()


def _append(
    series: list[list[float]], now: float, wish: float, every: float, keep_s: float
) -> None:
    if not series or now - series[-1][0] >= every:
        series.append([now, wish])
    else:  # within one sample step keep the higher wish
        series[-1][1] = max(series[-1][1], wish)
    while series and series[0][0] < now - keep_s:
        series.pop(0)


def _spells(state: dict[str, Any], now: float, need: int, target: int) -> None:
    """Record idle gaps: a spell starts when the need drops under the target, ends at its return."""
    spell = state.get(_SPELL)
    if spell is None:
        if need < target:
            state[_SPELL] = [now, target]
        return
    start, level = spell
    if need >= level:
        if now - start < 1.0:  # a dip within one control step is noise, not a gap
            state.pop(_SPELL, None)
            return
        state[_GAPS] = [*state.get(_GAPS, []), now - start][-_MAX_GAPS:]
        state.pop(_SPELL, None)


def timed(policy: Policy, timing: Timing) -> Policy:
    """Apply the garden's growth and holding rules to ``policy``'s (bounded) wish."""

    def wrapped(ctx: Any) -> tuple[float, dict[str, Any]]:
        wish, state = policy(ctx)
        state = dict(state)
        now = timing.clock(ctx)
        target = int(ctx.target_num_replicas)
        history = [list(p) for p in state.get(_HISTORY, [])]
        _append(history, now, wish, timing.sample_every_s, timing.cold_start_s)
        state[_HISTORY] = history
        gaps = state.get(_GAPS, [])
        hold = hold_for(gaps, timing.cold_cost_s)
        peaks = [list(p) for p in state.get(_PEAKS, [])]
        _append(peaks, now, wish, timing.sample_every_s, max(hold, timing.cold_cost_s))
        state[_PEAKS] = peaks
        need = math.ceil(wish - 1e-9)
        if int(ctx.current_num_replicas) == target:  # a cold start under way is no idle spell
            _spells(state, now, need, target)
        ahead = forecast(history, timing.cold_start_s)
        # The demand when a replica started now would serve; a trend may at
        # most double it, so one noisy slope cannot ask for the maximum, and
        # the first requests after a quiet spell (a step up from nothing, not
        # a trend) ask for what they need, not one replica more.
        expected = wish if ahead is None else min(ahead, 2.0 * wish)
        # What the same time of day reached before (none until a day is complete).
        timing.season.record(state, now, wish)
        seasonal = max(  # this slot and the one a cold start ahead (slots outlast it)
            timing.season.at(state, now) or 0.0,
            timing.season.at(state, now + timing.cold_start_s) or 0.0,
        )
        expected = max(expected, seasonal)
        if need > target:
            if math.ceil(expected - 1e-9) > target:  # still above capacity a cold start on
                return float(math.ceil(min(wish, expected) - 1e-9)), state
            excess = (wish - target) * timing.target_ongoing_requests
            if timing.overflow_room is not None and timing.overflow_room(ctx, excess):
                return float(target), state  # the burst fades before a replica is ready
            return float(need), state
        if math.ceil(expected - 1e-9) > target:  # rising: one replica ahead of the demand
            return float(target + 1), state
        if need < target and int(ctx.current_num_replicas) >= target:
            held = max((w for t, w in peaks if t >= now - hold), default=wish)
            held = max(held, seasonal)  # demand due back within a cold start is kept for
            return float(min(target, math.ceil(max(held, wish) - 1e-9))), state
        return float(target), state

    return wrapped
