"""Wrappers around a policy ``ctx -> (replicas, state)``: bounds, delays, budget.

Each takes a policy and returns one, so the core rule stays a plain function
of load. State lives in the dict Ray Serve hands back on the next call; each
wrapper keeps its keys under its own prefix. The clock is injected.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import Any, Protocol

__all__ = ["Policy", "PolicyContext", "bounded", "budget_clamped", "claimed", "delayed"]


class PolicyContext(Protocol):
    """The part of Ray Serve's ``AutoscalingContext`` the wrappers read."""

    @property
    def target_num_replicas(self) -> int: ...

    @property
    def policy_state(self) -> dict[str, Any]: ...


Policy = Callable[[Any], tuple[float, dict[str, Any]]]

_SINCE = "garden.delay.since"
_DIRECTION = "garden.delay.direction"


def bounded(policy: Policy, min_replicas: int, max_replicas: int) -> Policy:
    """Round ``policy``'s wish up to whole replicas within [min, max]."""
    if not 0 <= min_replicas <= max_replicas:
        raise ValueError(f"need 0 <= min <= max, got [{min_replicas}, {max_replicas}]")

    def wrapped(ctx: Any) -> tuple[float, dict[str, Any]]:
        wish, state = policy(ctx)
        return float(min(max_replicas, max(min_replicas, math.ceil(wish - 1e-9)))), state

    return wrapped


def _context_time(ctx: Any) -> float:
    # Ray Serve passes its controller's time; a replayed trace passes its own.
    now = getattr(ctx, "current_time", None)
    return float(now) if now is not None else time.time()


def delayed(
    policy: Policy,
    upscale_delay_s: float,
    downscale_delay_s: float,
    clock: Callable[[Any], float] = _context_time,
) -> Policy:
    """Act on a wish only after it has pointed the same way for the delay.

    A wish above the current target must hold ``upscale_delay_s``, one below
    it ``downscale_delay_s``; a wish that flips direction or matches the
    target restarts the wait. This is the hysteresis that keeps bursty
    traffic from flapping replicas.
    """

    def wrapped(ctx: Any) -> tuple[float, dict[str, Any]]:
        wish, state = policy(ctx)
        state = dict(state)
        target = ctx.target_num_replicas
        direction = (wish > target) - (wish < target)
        if direction == 0:
            state.pop(_SINCE, None)
            state.pop(_DIRECTION, None)
            return float(target), state
        now = clock(ctx)
        if state.get(_DIRECTION) != direction:
            state[_DIRECTION], state[_SINCE] = direction, now
        delay = upscale_delay_s if direction > 0 else downscale_delay_s
        if now - float(state[_SINCE]) + 1e-9 >= delay:
            state.pop(_SINCE, None)
            state.pop(_DIRECTION, None)
            return wish, state
        return float(target), state

    return wrapped


def budget_clamped(policy: Policy, allowance: Callable[[Any], int | None]) -> Policy:
    """Never wish for more replicas than the budget allows this model.

    ``allowance(ctx)`` is the model's share of the garden budget in replicas
    (``None``: uncapped). The clamp sits outside the delays, so a cut takes
    effect at once, while growth still waits its delay.
    """

    def wrapped(ctx: Any) -> tuple[float, dict[str, Any]]:
        wish, state = policy(ctx)
        cap = allowance(ctx)
        return (wish if cap is None else min(wish, float(cap))), state

    return wrapped


def claimed(
    policy: Policy, record: Callable[[Any], None], claim_of: Callable[[Any, float], Any]
) -> Policy:
    """Pass ``policy``'s wish through, recording ``claim_of(ctx, wish)`` on the way.

    Sits between the bounds and the delays, so the budget arbiter sees what
    the model wants now, not what the delays let it have yet.
    """

    def wrapped(ctx: Any) -> tuple[float, dict[str, Any]]:
        wish, state = policy(ctx)
        record(claim_of(ctx, wish))
        return wish, state

    return wrapped
