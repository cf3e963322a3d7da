"""Cooldowns: a model that missed a deadline or failed too often gets no routed traffic a while.

As LiteLLM's cooldowns and Envoy's outlier ejection do it, per model, as a
circuit breaker (pure; clock injected):

* **closed**: the model takes traffic. ``failures`` failures within
  ``window_s`` seconds, or one first-token deadline miss, open it.
* **open**: for ``cooldown_s`` seconds the model counts as unhealthy, so the
  policy sends its routed requests to the generalist; requests already
  waiting on it are re-dispatched (:meth:`Cooldowns.open_now`).
* **half-open**: after that, one routed request at a time (a *probe*, one
  with a deadline) may reach the model while the others still go to the
  generalist. The first answer after the cooldown closes the breaker; a
  failure or a miss opens it again for another ``cooldown_s``. A probe that
  takes longer than ``cooldown_s`` no longer holds the others back: the
  next routed request probes too. Probes are real requests, so no synthetic
  traffic is sent.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

__all__ = ["Cooldowns"]


@dataclass(slots=True)
class _Breaker:
    failures: deque[float] = field(default_factory=deque)
    open_until: float = float("-inf")
    tripped: bool = False  # opened at least once since it last closed
    probe: int | None = None  # the token of the probe in flight
    probe_until: float = float("-inf")  # when that probe stops holding the others back


class Cooldowns:
    """One breaker per model id (or adapter alias), created on first use."""

    def __init__(
        self,
        *,
        failures: int = 1,
        window_s: float = 10.0,
        cooldown_s: float = 5.0,
        clock: Callable[[], float],
    ) -> None:
        if failures < 1:
            raise ValueError(f"failures must be >= 1, got {failures}")
        self._failures = failures
        self._window_s = window_s
        self._cooldown_s = cooldown_s
        self._clock = clock
        self._breakers: dict[str, _Breaker] = {}
        self._tokens = 0

    def _of(self, model: str) -> _Breaker:
        return self._breakers.setdefault(model, _Breaker())

    def _open(self, breaker: _Breaker, now: float) -> None:
        breaker.open_until = now + self._cooldown_s
        breaker.tripped = True
        breaker.probe = None
        breaker.failures.clear()

    def failed(self, model: str) -> None:
        """``model`` failed a request; the ``failures``-th within the window opens it."""
        breaker, now = self._of(model), self._clock()
        if breaker.tripped:  # a failed probe (or a failure while open): open again
            self._open(breaker, now)
            return
        breaker.failures.append(now)
        while breaker.failures and breaker.failures[0] <= now - self._window_s:
            breaker.failures.popleft()
        if len(breaker.failures) >= self._failures:
            self._open(breaker, now)

    def missed(self, model: str) -> None:
        """``model`` missed a deadline: open it now."""
        self._open(self._of(model), self._clock())

    def answered(self, model: str) -> None:
        """``model`` answered a request: a half-open breaker closes."""
        breaker = self._breakers.get(model)
        if breaker is not None and breaker.tripped and self._clock() >= breaker.open_until:
            self._breakers[model] = _Breaker()

    def open_now(self, model: str) -> bool:
        """True while ``model`` is open (in its cooldown proper, before any probe)."""
        breaker = self._breakers.get(model)
        return breaker is not None and self._clock() < breaker.open_until

    def cooling(self, model: str) -> bool:
        """True while routed requests must avoid ``model``: open, or its probe in flight."""
        breaker = self._breakers.get(model)
        if breaker is None:
            return False
        now = self._clock()
        return now < breaker.open_until or (breaker.probe is not None and now < breaker.probe_until)

    def try_probe(self, model: str) -> int | None:
        """A routed request is sent to ``model``: its probe token if it probes, else None."""
        breaker = self._breakers.get(model)
        now = self._clock()
        if breaker is None or not breaker.tripped or now < breaker.open_until:
            return None
        if breaker.probe is not None and now < breaker.probe_until:
            return None
        self._tokens += 1
        breaker.probe, breaker.probe_until = self._tokens, now + self._cooldown_s
        return self._tokens

    def release(self, model: str, token: int) -> None:
        """Probe ``token`` ended with no verdict (cancelled): the next routed request probes."""
        breaker = self._breakers.get(model)
        if breaker is not None and breaker.probe == token:
            breaker.probe = None

    def open_ends(self) -> dict[str, float]:
        """Each model open now, with the time (this clock) its cooldown proper ends."""
        now = self._clock()
        return {m: b.open_until for m, b in self._breakers.items() if now < b.open_until}

    def adopt(self, model: str, until: float) -> bool:
        """Another router opened ``model`` until ``until`` (this clock): open it here too.

        Nothing changes when it is already open about as long (within 50 ms),
        so that routers passing one cooldown back and forth never lengthen it.
        True when it opened or lengthened here.
        """
        breaker, now = self._of(model), self._clock()
        if until <= now or until <= breaker.open_until + 0.05:
            return False
        breaker.open_until = until
        breaker.tripped = True
        breaker.probe = None
        breaker.failures.clear()
        return True
