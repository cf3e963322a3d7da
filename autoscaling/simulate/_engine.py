"""The discrete-event replay: arrivals, routing, replicas, metrics and control ticks.

Events sit in one heap ordered by (time, sequence), so equal times run in
the order they were scheduled and a replay is deterministic. Simplifications
against a live garden (each chosen because it moves results by less than the
controller's own granularity):

- the controller runs every ``control_period_s`` (1 s) instead of Ray's
  0.1 s; delays are timed in seconds either way, and metrics change only at
  pushes (every ``metrics_interval_s``);
- the router reads replica counts live, not every ``state_refresh_s``;
- a replica being scaled down drains all its requests (no graceful-shutdown
  timeout), and starting replicas are stopped first, newest first.
"""

from __future__ import annotations

import heapq
import itertools
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from autoscaling.simulate._autoscaler import QUEUED, context_of, demand_of, grant
from autoscaling.simulate._garden import ModelRun
from autoscaling.simulate._metrics import Reporter, record_interval
from autoscaling.simulate._replica import Job, Replica, ReplicaState
from router.policy import Features, ModelState, PolicyConfig, Reason, decide, fall_back

__all__ = ["Engine"]


def _state_of(run: ModelRun) -> ModelState:
    """A model's state as the live router sees it (``router._state.ModelStates``).

    A capped model keeps what its replicas serve at their target and spills
    the overflow, as in the live router.
    """
    running = len(run.running())
    return ModelState(
        healthy=running > 0,
        outstanding=run.outstanding,
        queue_limit=max(1, running * run.spec.limits.max_ongoing_requests),
        budget_capped=run.capped,
        target_limit=int(running * run.deployment.target_ongoing_requests),
        running=running,
        starting=len(run.active()) - running,
    )


class Engine:
    """Replays jobs through ``runs``; the outcome is left on the jobs and the runs."""

    def __init__(
        self,
        runs: Mapping[str, ModelRun],
        routing: PolicyConfig,
        horizon_s: float,
        *,
        autoscale: bool,
        budget: tuple[float | None, float | None] = (None, None),
        allowed: dict[str, int] | None = None,
        control_period_s: float = 1.0,
        metrics_interval_s: float = 10.0,
        look_back_s: float = 30.0,
        series_step_s: float = 10.0,
    ) -> None:
        self.runs, self.routing, self.horizon_s = dict(runs), routing, horizon_s
        self.autoscale, self.budget = autoscale, budget
        self.period, self.push_every = control_period_s, metrics_interval_s
        self.record_every = record_interval(look_back_s, metrics_interval_s)
        self.series_every = max(1, round(series_step_s / control_period_s))
        self.now = 0.0
        self._heap: list[tuple[float, int, Callable[..., None], tuple[Any, ...]]] = []
        self._seq = itertools.count()
        self._open = 0  # requests not finished yet
        self._ticks = 0
        # Shared with the garden policies' allowance callables; refreshed every tick.
        self._allowed: dict[str, int] = allowed if allowed is not None else {}
        self.cost_rate = self.max_cost_rate = 0.0
        keys = ("demand", "in_flight", "replicas", "target")
        self.series: dict[str, Any] = {
            "t": [],
            "cost_rate": [],
            "models": {name: {k: [] for k in keys} for name in self.runs},
        }

    # -- the loop -----------------------------------------------------------

    def at(self, t: float, fn: Callable[..., None], *args: Any) -> None:
        """Run ``fn(*args)`` at time ``t``."""
        heapq.heappush(self._heap, (t, next(self._seq), fn, args))

    def run(self, jobs: Sequence[Job]) -> None:
        """Replay ``jobs`` (sorted by arrival) to completion."""
        for run in self.runs.values():
            for _ in range(run.target):
                self._start_replica(run, ready_s=0.0)
        for job in jobs:
            self.at(job.arrival_s, self._arrive, job)
        self._open = len(jobs)
        self.at(0.0, self._tick)
        self.at(0.0, self._record_handles)
        self.at(self.push_every, self._push_handles)
        while self._heap:
            t, _, fn, args = heapq.heappop(self._heap)
            self.now = t
            fn(*args)
        for run in self.runs.values():
            for replica in run.replicas:
                run.hold(replica, self.now, self.horizon_s)

    def _going(self) -> bool:
        return self.now < self.horizon_s or self._open > 0

    # -- routing ------------------------------------------------------------

    def _arrive(self, job: Job) -> None:
        gen = self.routing.generalist
        owner = self.routing.owners.get(job.domain)
        states = {m: _state_of(self.runs[m]) for m in (owner, gen) if m is not None}
        decision = decide(Features(job.domain, 1.0), states, self.routing)
        if decision.model != gen and not self._admits(self.runs[decision.model]):
            decision = fall_back(decision, Reason.OVERLOADED, self.routing)
        job.model = decision.model
        job.spilled_from = decision.fallback_from
        run = self.runs[job.model]
        if not self._admits(run):
            job.rejected, job.done_s = True, self.now  # Serve's queue is full: 429
            self._open -= 1
            return
        run.outstanding += 1
        if job.spilled_from is not None:
            self.runs[job.spilled_from].spilled += 1
        replica = run.free_replica(job)
        if replica is None:
            run.queue.append(job)
        else:
            replica.assign(job, self.now)
            self._arm(run, replica)

    @staticmethod
    def _admits(run: ModelRun) -> bool:
        return (
            run.free_replica() is not None or len(run.queue) < run.spec.limits.max_queued_requests
        )

    def _pull(self, run: ModelRun) -> None:
        while run.queue:
            replica = run.free_replica(run.queue[0])
            if replica is None:
                return
            replica.assign(run.queue.popleft(), self.now)
            self._arm(run, replica)

    # -- replicas -----------------------------------------------------------

    def _arm(self, run: ModelRun, replica: Replica) -> None:
        armed = replica.armed
        if replica.prefill_done_s is not None and replica.prefill_token != armed[0]:
            self.at(replica.prefill_done_s, self._on_prefill, run, replica, replica.prefill_token)
        if replica.decode_done_s is not None and replica.decode_token != armed[1]:
            self.at(replica.decode_done_s, self._on_decode, run, replica, replica.decode_token)
        replica.armed = (replica.prefill_token, replica.decode_token)

    def _on_prefill(self, run: ModelRun, replica: Replica, token: int) -> None:
        if token == replica.prefill_token and replica.prefill_done_s is not None:
            self._finished(run, replica, replica.finish_prefill(self.now))

    def _on_decode(self, run: ModelRun, replica: Replica, token: int) -> None:
        if token == replica.decode_token and replica.decode_done_s is not None:
            self._finished(run, replica, replica.finish_decode(self.now))

    def _finished(self, run: ModelRun, replica: Replica, done: list[Job]) -> None:
        for job in done:
            run.outstanding -= 1
            self._open -= 1
            if job.spilled_from is not None:
                self.runs[job.spilled_from].spilled -= 1
        self._arm(run, replica)
        if replica.state is ReplicaState.DRAINING and replica.ongoing == 0:
            self._remove(run, replica)
        elif done:
            self._pull(run)

    def _start_replica(self, run: ModelRun, ready_s: float) -> None:
        replica = Replica(
            run.new_replica_name(),
            run.profile,
            run.spec.limits.max_ongoing_requests,
            provisioned_s=self.now,
            ready_s=ready_s,
            block_tokens=run.block_tokens,
        )
        run.replicas.append(replica)
        self._cost_changed()
        self.at(ready_s, self._ready, run, replica)

    def _ready(self, run: ModelRun, replica: Replica) -> None:
        if replica.state is not ReplicaState.STARTING or replica not in run.replicas:
            return
        replica.state = ReplicaState.RUNNING
        replica.meter = type(replica.meter)(self.now)
        run.kv[replica.name] = Reporter(run.look_back_s)
        self.at(self.now, self._record_kv, run, replica)
        self.at(self.now + self.push_every, self._push_kv, run, replica)
        self._pull(run)

    def _remove(self, run: ModelRun, replica: Replica) -> None:
        run.replicas.remove(replica)
        run.kv.pop(replica.name, None)
        run.hold(replica, self.now, self.horizon_s)
        self._cost_changed()

    def _scale(self, run: ModelRun, target: int) -> None:
        active = run.active()
        for _ in range(target - len(active)):
            self._start_replica(run, ready_s=self.now + run.profile.cold_start_s)
        surplus = len(active) - target
        # Starting replicas go first (newest first), then the least busy running ones.
        doomed = sorted(
            active,
            key=lambda r: (r.state is ReplicaState.RUNNING, r.ongoing, -r.provisioned_s),
        )[: max(0, surplus)]
        for replica in doomed:
            if replica.state is ReplicaState.STARTING or replica.ongoing == 0:
                replica.state = ReplicaState.DRAINING
                self._remove(run, replica)
            else:
                replica.state = ReplicaState.DRAINING
        if target > run.target:
            run.deployment.last_up_s = self.now
        elif target < run.target:
            run.deployment.last_down_s = self.now
        if self.now <= self.horizon_s:
            run.scale_events += 1
        run.target = target

    def _cost_changed(self) -> None:
        self.cost_rate = sum(r.spec.cost_per_hour * len(r.replicas) for r in self.runs.values())
        self.max_cost_rate = max(self.max_cost_rate, self.cost_rate)

    # -- metrics ------------------------------------------------------------

    def _record_handles(self) -> None:
        for run in self.runs.values():
            values = {QUEUED: float(len(run.queue))}
            values.update({r.name: float(r.ongoing) for r in run.replicas})
            run.handle.record(self.now, values)
        if self._going():
            self.at(self.now + self.record_every, self._record_handles)

    def _push_handles(self) -> None:
        for run in self.runs.values():
            run.handle.push(self.now)
        if self._going():
            self.at(self.now + self.push_every, self._push_handles)

    def _record_kv(self, run: ModelRun, replica: Replica) -> None:
        reporter = run.kv.get(replica.name)
        if reporter is not None:
            reporter.record(self.now, replica.autoscaling_stats(self.now))
            if self._going():
                self.at(self.now + self.record_every, self._record_kv, run, replica)

    def _push_kv(self, run: ModelRun, replica: Replica) -> None:
        reporter = run.kv.get(replica.name)
        if reporter is not None:
            reporter.push(self.now)
            if self._going():
                self.at(self.now + self.push_every, self._push_kv, run, replica)

    # -- the controller -----------------------------------------------------

    def _tick(self) -> None:
        contexts = {name: context_of(run, self.now) for name, run in self.runs.items()}
        for name, ctx in contexts.items():
            run = self.runs[name]
            run.demand = demand_of(run, ctx)
            run.peak_demand = max(run.peak_demand, run.demand)
        if self.autoscale:
            cost_cap, gpu_cap = self.budget
            if cost_cap is not None or gpu_cap is not None:
                granted = grant(self.runs, contexts, cost_cap, gpu_cap)
                self._allowed.clear()
                self._allowed.update(granted)
            for name, ctx in contexts.items():
                run = self.runs[name]
                target = run.deployment.decide(ctx)
                if target != run.target:
                    self._scale(run, target)
        if self._ticks % self.series_every == 0 and self.now <= self.horizon_s:
            self._sample()
        self._ticks += 1
        if self._going():
            self.at(self.now + self.period, self._tick)

    def _sample(self) -> None:
        self.series["t"].append(round(self.now, 3))
        self.series["cost_rate"].append(round(self.cost_rate, 6))
        for name, run in self.runs.items():
            row = self.series["models"][name]
            row["demand"].append(round(run.demand, 4))
            row["in_flight"].append(run.outstanding + run.spilled)
            row["replicas"].append(len(run.running()))
            row["target"].append(run.target)
