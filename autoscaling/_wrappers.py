"""Wrappers around a policy ``ctx -> (replicas, state)``: bounds, claims, budget.

Each takes a policy and returns one, so the core rule stays a plain function
of load. State lives in the dict Ray Serve hands back on the next call; each
wrapper keeps its keys under its own prefix. The clock is injected.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, Protocol

__all__ = ["Policy", "PolicyContext", "bounded", "budget_clamped", "claimed"]


class PolicyContext(Protocol):
    """The part of Ray Serve's ``AutoscalingContext`` the wrappers read."""

    @property
    def target_num_replicas(self) -> int: ...

    @property
    def policy_state(self) -> dict[str, Any]: ...


Policy = Callable[[Any], tuple[float, dict[str, Any]]]


def bounded(policy: Policy, min_replicas: int, max_replicas: int, *, whole: bool = True) -> Policy:
    """Keep ``policy``'s wish within [min, max], rounded up to whole replicas if ``whole``.

    The timing rules take the fractional wish (``whole=False``): a trend or a
    burst's excess measured on rounded replicas would read a quarter of a
    replica's load as a whole one.
    """
    if not 0 <= min_replicas <= max_replicas:
        raise ValueError(f"need 0 <= min <= max, got [{min_replicas}, {max_replicas}]")

    def wrapped(ctx: Any) -> tuple[float, dict[str, Any]]:
        wish, state = policy(ctx)
        if whole:
            wish = math.ceil(wish - 1e-9)
        return float(min(max_replicas, max(min_replicas, wish))), state

    return wrapped


def budget_clamped(policy: Policy, allowance: Callable[[Any], int | None]) -> Policy:
    """Never wish for more replicas than the budget allows this model.

    ``allowance(ctx)`` is the model's share of the garden budget in replicas
    (``None``: uncapped). The clamp sits outside the timing rules
    (``autoscaling._timing``), so a cut takes effect at once.
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

    Sits between the bounds and the timing rules, so the budget arbiter sees
    what the model wants now, not what the timing lets it have yet.
    """

    def wrapped(ctx: Any) -> tuple[float, dict[str, Any]]:
        wish, state = policy(ctx)
        record(claim_of(ctx, wish))
        return wish, state

    return wrapped
