"""Load shapes as pure functions of time; the locustfile wraps them for Locust.

* :class:`BurstSchedule`: ``users`` users for ``burst_s`` seconds, then none for
  ``idle_s`` seconds, repeated until ``duration_s`` (Locust's
  ``LoadTestShape.tick`` contract: ``None`` ends the test).
* :func:`pacing_wait`: the wait before a user's next request so that ``users``
  users together start ``rate`` requests per second (a constant arrival rate,
  as long as each request takes less than ``users / rate`` seconds; a user
  whose request took longer starts the next one at once).

Pure standard library, so unit tests need no Locust (importing Locust
monkey-patches the process with gevent).
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["BurstSchedule", "pacing_wait"]


@dataclass(frozen=True, slots=True)
class BurstSchedule:
    """Bursts of ``users`` users separated by idle periods with no user."""

    users: int
    burst_s: float
    idle_s: float
    duration_s: float | None = None  # None: forever

    def __post_init__(self) -> None:
        if self.users < 1 or self.burst_s <= 0 or self.idle_s < 0:
            raise ValueError(f"a burst needs users >= 1, burst_s > 0 and idle_s >= 0, got {self!r}")

    def users_at(self, t: float) -> int | None:
        """Users wanted ``t`` seconds into the test; None once it is over."""
        if self.duration_s is not None and t >= self.duration_s:
            return None
        phase = t % (self.burst_s + self.idle_s)
        return self.users if phase < self.burst_s else 0


def pacing_wait(users: int, rate: float, last_start: float | None, now: float) -> float:
    """Seconds one of ``users`` users waits so that all of them start ``rate`` requests/s.

    Each user starts a request every ``users / rate`` seconds, counted from
    the start of its previous one (``last_start``; None: its first request,
    which starts at once). ``rate <= 0`` means no pacing (0 s).
    """
    if rate <= 0 or last_start is None:
        return 0.0
    interval = max(users, 1) / rate
    return max(0.0, last_start + interval - now)
