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
from dataclasses import dataclass

from autoscaling.budget import Claim, arbitrate

__all__ = ["Budget", "Ledger", "ledger_for"]


@dataclass(frozen=True, slots=True)
class Budget:
    """The garden's ceilings (None: no ceiling of that kind)."""

    max_cost_per_hour: float | None = None
    max_gpus: float | None = None

    @property
    def unlimited(self) -> bool:
        """True when neither ceiling is set."""
        return self.max_cost_per_hour is None and self.max_gpus is None


class Ledger:
    """The latest claim of each model of one garden, and the arbiter's grants."""

    def __init__(self, budget: Budget) -> None:
        self.budget = budget
        self._claims: dict[str, Claim] = {}
        self._lock = threading.Lock()

    def claim(self, claim: Claim) -> None:
        """Record ``claim`` as its model's current wish."""
        with self._lock:
            self._claims[claim.model] = claim

    def spare(self, model: str) -> float:
        """Requests ``model``'s replicas could still take at their target (0 before its claim)."""
        with self._lock:
            claim = self._claims.get(model)
        return 0.0 if claim is None else claim.spare

    def grants(self) -> dict[str, int]:
        """Replicas the budget grants each claiming model now."""
        with self._lock:
            claims = list(self._claims.values())
        return arbitrate(claims, self.budget.max_cost_per_hour, self.budget.max_gpus)

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
