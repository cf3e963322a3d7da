"""The garden's coordinator: every model's claim, shared by its policies in one process.

Ray Serve (2.60) calls each deployment's custom policy in its controller
process; its application-level policy, which would see all deployments at
once, is documented there as "not yet supported". So every
:class:`~autoscaling.policy.GardenPolicy` of a garden records its model's
claim in the same :class:`Ledger`, and reads back the replicas the budget
arbiter grants it, and the spare capacity of the generalist, which takes a
specialist's short overflow. Claims are at most one control period old.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from autoscaling.budget import Claim, allowances, arbitrate

__all__ = ["DRAIN_BOUND_S", "Budget", "Ledger", "ledger_for"]


@dataclass(frozen=True, slots=True)
class Budget:
    """The garden's ceilings (None: no ceiling of that kind)."""

    max_cost_per_hour: float | None = None
    max_gpus: float | None = None

    @property
    def unlimited(self) -> bool:
        """True when neither ceiling is set."""
        return self.max_cost_per_hour is None and self.max_gpus is None


#: Longest a replica Serve releases may keep its resources: Serve waits
#: ``graceful_shutdown_wait_loop_s`` for its requests, then kills it after
#: ``graceful_shutdown_timeout_s`` (both set on every model deployment,
#: ``deployments/model.py``), plus a control period of slack.
DRAIN_BOUND_S = 2.0 + 20.0 + 1.0


class Ledger:
    """The latest claim of each model of one garden, and the arbiter's grants.

    Under a budget the grants count the replicas still draining
    (:func:`autoscaling.budget.allowances`, the simulator's code too). Ray's
    ``AutoscalingContext`` has no count of them, so the ledger keeps its
    own: each fall of a model's target (its claim's ``held``) releases that
    many replicas, which count as draining for ``drain_s``, the longest
    Serve lets a released replica live. That overstates a replica that
    stops sooner, never understates one, so held cost stays within the
    ceiling. ``clock`` is injected (monotonic seconds).
    """

    def __init__(
        self,
        budget: Budget,
        *,
        drain_s: float = DRAIN_BOUND_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.budget = budget
        self._claims: dict[str, Claim] = {}
        self._released: dict[str, list[tuple[float, int]]] = {}
        self._drain_s = drain_s
        self._clock = clock
        self._lock = threading.Lock()

    def claim(self, claim: Claim) -> None:
        """Record ``claim`` as its model's current wish; a fall in its target releases replicas."""
        with self._lock:
            before = self._claims.get(claim.model)
            if before is not None and claim.held < before.held:
                released = self._released.setdefault(claim.model, [])
                released.append((self._clock(), before.held - claim.held))
            self._claims[claim.model] = claim

    def draining(self) -> dict[str, int]:
        """Replicas each model released within ``drain_s`` (an upper bound on those draining)."""
        now = self._clock()
        with self._lock:
            for released in self._released.values():
                released[:] = [(t, n) for t, n in released if now - t < self._drain_s]
            return {m: sum(n for _, n in r) for m, r in self._released.items() if r}

    def spare(self, model: str) -> float:
        """Requests ``model``'s replicas could still take at their target (0 before its claim)."""
        with self._lock:
            claim = self._claims.get(model)
        return 0.0 if claim is None else claim.spare

    def grants(self) -> dict[str, int]:
        """Replicas the budget grants each claiming model now, draining replicas counted."""
        draining = self.draining()
        with self._lock:
            claims = list(self._claims.values())
        if self.budget.unlimited:
            return arbitrate(claims, None, None)
        return allowances(
            claims,
            committed={c.model: c.held for c in claims},
            draining=draining,
            max_cost_per_hour=self.budget.max_cost_per_hour,
            max_gpus=self.budget.max_gpus,
        )

    def allowance(self, model: str) -> int | None:
        """Replicas ``model`` may have under the budget (None: no budget)."""
        if self.budget.unlimited:
            return None
        return self.grants().get(model)

    def capped(self) -> frozenset[str]:
        """Models granted fewer replicas than they wish for."""
        if self.budget.unlimited:
            return frozenset()
        grants = self.grants()
        with self._lock:
            return frozenset(m for m, c in self._claims.items() if grants.get(m, 0) < c.wish)


_LEDGERS: dict[str, Ledger] = {}
_LEDGERS_LOCK = threading.Lock()


def ledger_for(app: str, budget: Budget) -> Ledger:
    """The process-wide ledger of garden ``app`` (replaced when its budget changes)."""
    with _LEDGERS_LOCK:
        ledger = _LEDGERS.get(app)
        if ledger is None or ledger.budget != budget:
            ledger = _LEDGERS[app] = Ledger(budget)
        return ledger
