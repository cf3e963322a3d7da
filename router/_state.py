"""The router's live view of every model deployment (pure; clock injected).

Two sources feed it, and the docs say so (``docs/architecture.md``):

* the router's own counters: requests it has outstanding at each model
  (``begin``/``end``), and the failures and deadline misses it saw
  (``failed``, ``missed``), which put a model in cooldown
  (:mod:`router._cooldown`) so that following requests neither try a
  replica that just died before Serve notices nor wait on a stalled one;
* Ray Serve's controller: the running replicas of each deployment, pushed in
  with :meth:`ModelStates.observe` at least once a second by the ingress.

A model's capacity is its running replicas times its ``max_ongoing_requests``;
a new request beyond it would wait in a queue, so the policy spills instead.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import replace

from router._cooldown import Cooldowns
from router.policy import ModelState

__all__ = ["DOWN_GRACE_S", "ModelStates"]

#: Seconds a model must be reported down in a row before requests are refused:
#: a replacement on a live node is placed (a worker started) well within it on a
#: loaded 2-core machine; one whose node is gone never is.
DOWN_GRACE_S = 10.0


class ModelStates:
    """Counters and health of the garden's models, as :class:`ModelState` snapshots.

    ``per_replica`` maps each model to its ``max_ongoing_requests``, and
    ``targets`` to its ``target_ongoing_requests`` (absent: unknown, and
    the queue limit stands in). Until the first :meth:`observe`,
    every model counts as unhealthy (no replica known). ``failures``,
    ``window_s`` and ``cooldown_s`` are the cooldowns' (``router.cooldown``).
    """

    def __init__(
        self,
        per_replica: Mapping[str, int],
        *,
        targets: Mapping[str, float] | None = None,
        failures: int = 1,
        window_s: float = 10.0,
        cooldown_s: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], float] = time.time,
        down_grace_s: float = DOWN_GRACE_S,
    ) -> None:
        self._per_replica = dict(per_replica)
        self._targets = dict(targets or {})
        self._outstanding = dict.fromkeys(per_replica, 0)
        self._running = dict.fromkeys(per_replica, 0)
        self._starting = dict.fromkeys(per_replica, 0)
        self._ran: set[str] = set()  # models seen with a running replica, ever
        self._down_since: dict[str, float] = {}
        self._down_grace_s = down_grace_s
        self._cooldowns = Cooldowns(
            failures=failures, window_s=window_s, cooldown_s=cooldown_s, clock=clock
        )
        self._budget_capped: set[str] = set()
        self._spilled = dict.fromkeys(per_replica, 0)
        self._others: dict[str, int] = {}
        self._clock = clock
        self._wall = wall
        self.observed_at: float | None = None

    def begin(self, model: str, spilled_from: str | None = None) -> None:
        """A request was dispatched to ``model``, in place of ``spilled_from`` if set."""
        self._outstanding[model] += 1
        if spilled_from is not None:
            self._spilled[spilled_from] += 1

    def try_probe(self, model: str) -> int | None:
        """A routed request goes to ``model``: a token if it probes ``model``'s ending cooldown.

        Its outcome (:meth:`answered`, :meth:`failed`, :meth:`missed`, else
        :meth:`release` with the token) decides whether the cooldown ends.
        """
        return self._cooldowns.try_probe(model)

    def end(self, model: str, spilled_from: str | None = None) -> None:
        """A request to ``model`` finished (answered, failed or cancelled)."""
        self._outstanding[model] = max(0, self._outstanding[model] - 1)
        if spilled_from is not None:
            self._spilled[spilled_from] = max(0, self._spilled[spilled_from] - 1)

    def all_outstanding(self) -> dict[str, int]:
        """This router's outstanding requests per model (what it reports to the others)."""
        return dict(self._outstanding)

    def observe_others(self, outstanding: Mapping[str, int]) -> None:
        """The other router replicas' outstanding requests per model, as they last reported.

        A model's capacity check counts them beside this router's own.
        """
        self._others = {m: max(0, int(n)) for m, n in outstanding.items()}

    def spilled(self) -> dict[str, int]:
        """Requests outstanding elsewhere that each model could not take (its lost demand)."""
        return dict(self._spilled)

    def failed(self, model: str) -> None:
        """``model`` failed a request before answering (enough of these: a cooldown).

        ``model`` may be an alias of :meth:`snapshot` (an adapter): then only
        it cools down, not the base model it runs on.
        """
        self._cooldowns.failed(model)

    def missed(self, model: str) -> None:
        """``model`` missed a routed request's deadline: a cooldown starts now."""
        self._cooldowns.missed(model)

    def answered(self, model: str) -> None:
        """``model`` answered a request (its head arrived); a probe's answer ends a cooldown."""
        self._cooldowns.answered(model)

    def release(self, model: str, token: int) -> None:
        """Probe ``token`` sent to ``model`` ended without a verdict (cancelled)."""
        self._cooldowns.release(model, token)

    def cooling(self, model: str) -> bool:
        """True while routed requests must avoid ``model``: in cooldown, or probing."""
        return self._cooldowns.cooling(model)

    def open_now(self, model: str) -> bool:
        """True while ``model``'s cooldown proper runs: requests waiting on it should leave."""
        return self._cooldowns.open_now(model)

    def cooldown_ends(self) -> dict[str, float]:
        """Models in cooldown here, with the wall time (epoch s) each cooldown ends.

        What this router tells the others: wall time, since routers on
        different nodes share no monotonic clock.
        """
        offset = self._wall() - self._clock()
        return {m: until + offset for m, until in self._cooldowns.open_ends().items()}

    def adopt_cooldowns(self, ends: Mapping[str, float]) -> list[str]:
        """Cooldowns other routers opened (model: wall end): open them here too.

        So that a specialist that stalled costs one request the deadline
        garden-wide, not one per router replica. The models newly opened.
        """
        offset = self._clock() - self._wall()
        return [m for m, end in ends.items() if self._cooldowns.adopt(m, end + offset)]

    def observe(
        self,
        running: Mapping[str, int],
        budget_capped: frozenset[str] = frozenset(),
        starting: Mapping[str, int] | None = None,
        down: frozenset[str] = frozenset(),
    ) -> None:
        """Record Serve's running and starting replica counts of each model (absent: none).

        ``down``: the models whose replicas failed, with none running (Serve
        reports them unhealthy), as opposed to scaled to zero or rolling out.
        """
        self._running = {m: int(running.get(m, 0)) for m in self._per_replica}
        self._starting = {m: int((starting or {}).get(m, 0)) for m in self._per_replica}
        self._ran.update(m for m, n in self._running.items() if n > 0)
        now = self._clock()
        self._down_since = {m: self._down_since.get(m, now) for m in down if m in self._per_replica}
        self._budget_capped = set(budget_capped)
        self.observed_at = self._clock()

    def replicas(self, model: str) -> int:
        """Serve's running replicas of ``model``, as last observed."""
        return self._running[model]

    def cold_start(self, model: str) -> bool:
        """True when no replica of ``model`` runs and one is starting (as last observed)."""
        return self._running[model] == 0 and self._starting[model] > 0

    def first_start(self, model: str) -> bool:
        """A cold start of a model never seen running: its first, as far as this router knows.

        Not a replica replaced in an update, nor a start from zero after it
        served (:meth:`ran` records what others saw).
        """
        return self.cold_start(model) and model not in self._ran

    def ran(self, model: str) -> None:
        """Record that ``model`` has had a running replica (seen elsewhere)."""
        self._ran.add(model)

    def down(self, model: str) -> bool:
        """True when ``model``'s replicas failed and none runs (as last observed).

        A request for it would wait in Serve's queue for a replacement that
        may never be placed (its node is gone); a model scaled to zero, or
        rolling out a new version, is not down: its replica is on the way.
        Reported down for :data:`DOWN_GRACE_S` in a row first: between a
        replica's death and its replacement's placement, a model that is
        only restarting looks down for a moment.
        """
        since = self._down_since.get(model)
        return since is not None and self._clock() - since >= self._down_grace_s

    def outstanding(self, model: str) -> int:
        """Requests this router has at ``model`` right now (the others' not included)."""
        return self._outstanding[model]

    def _target_limit(self, model: str) -> int | None:
        target = self._targets.get(model)
        return None if target is None else int(self._running[model] * target)

    def snapshot(self, aliases: Mapping[str, str] | None = None) -> dict[str, ModelState]:
        """The state of every model now, for :func:`router.policy.decide`.

        ``aliases`` maps more ids to a model whose state they share: a
        ``<model>:<adapter>`` runs on its base model's replicas.
        """
        states = self._states()
        for alias, model in (aliases or {}).items():
            base = states[model]
            cooling = self._cooldowns.cooling(alias)
            states[alias] = replace(base, healthy=False, cooling=True) if cooling else base
        return states

    def _states(self) -> dict[str, ModelState]:
        cooling = {model: self._cooldowns.cooling(model) for model in self._per_replica}
        return {
            model: ModelState(
                healthy=self._running[model] > 0 and not cooling[model],
                cooling=cooling[model],
                outstanding=self._outstanding[model] + self._others.get(model, 0),
                queue_limit=max(1, self._running[model] * per_replica),
                budget_capped=model in self._budget_capped,
                target_limit=self._target_limit(model),
                running=self._running[model],
                starting=self._starting[model],
            )
            for model, per_replica in self._per_replica.items()
        }
