"""The core autoscaling rule: LLM load in, desired replicas out (pure).

Demand is measured in the units that fill a replica, each against what the
model's profile says one replica does within its SLO:

* **prefill work**: prompt tokens arriving per second, over the prefill
  rate at the utilization that keeps the prompt queue's wait within the
  SLO (the size-aware objective at the mean prompt), plus the prompt
  tokens already waiting, cleared within that objective;
* **decoding sequences**, over the batch at which each still decodes within
  the TPOT objective;
* **KV cache**: replicas kept under ``kv_target`` of their cache, since a
  full cache preempts requests long before the request count says so.

The largest of the three is the work demand. Requests the router spilled to
the generalist for want of this model, and requests waiting at its handle,
are counted in requests per replica (``target_ongoing_requests``), since their tokens never
reached a replica. Without the replicas' work metrics (none running, or an
engine that does not report them) the rule falls back to Ray's: running plus
queued requests over ``target_ongoing_requests``.
"""

from __future__ import annotations

from dataclasses import dataclass

from autoscaling.profile import Profile, prefill_utilization
from cluster.config import DEFAULT_KV_TARGET

__all__ = ["Capacity", "Load", "desired_replicas", "work_replicas"]


@dataclass(frozen=True, slots=True)
class Load:
    """What one model is asked to do right now, summed over its replicas.

    The work fields are None when the replicas did not report them.
    """

    running: float
    queued: float = 0.0  # requests waiting at the handle (Ray's total_queued_requests)
    spilled: float = 0.0
    kv_usage: float | None = None  # mean fraction of KV cache in use, over replicas
    prompt_tokens_per_s: float | None = None  # prompt tokens arriving, summed over replicas
    requests_per_s: float | None = None  # requests arriving, summed over replicas
    prefill_tokens_waiting: float | None = None  # prompt tokens not yet prefilled
    running_sequences: float | None = None  # sequences in the engines' batches

    @property
    def demand(self) -> float:
        """Requests the model should be serving: running, waiting and spilled."""
        return self.running + self.queued + self.spilled

    @property
    def has_work(self) -> bool:
        """True when the replicas reported their work (tokens and sequences)."""
        return self.prompt_tokens_per_s is not None and self.requests_per_s is not None


@dataclass(frozen=True, slots=True)
class Capacity:
    """How much one replica of the model can take at its SLO.

    ``target_ongoing_requests`` is the requests one replica holds within its TTFT SLO (the
    request-count rule's unit). With a ``profile``, work is measured against
    it: ``ttft_s`` and ``ttft_s_per_token`` give the size-aware TTFT
    objective, ``tpot_s`` the decode objective.
    """

    target_ongoing_requests: float
    kv_target: float = DEFAULT_KV_TARGET
    profile: Profile | None = None
    ttft_s: float = 1.0
    ttft_s_per_token: float = 0.0
    tpot_s: float = 0.2
    miss: float = 0.01

    def __post_init__(self) -> None:
        if self.target_ongoing_requests <= 0:
            raise ValueError(
                f"target_ongoing_requests must be > 0, got {self.target_ongoing_requests}"
            )
        if not 0 < self.kv_target <= 1:
            raise ValueError(f"kv_target must be in (0, 1], got {self.kv_target}")

    @property
    def cold_start_s(self) -> float:
        """Seconds from a scale-up to a serving replica (0 without a profile)."""
        return 0.0 if self.profile is None else self.profile.cold_start_s

    def prefill_target(self, mean_prompt_tokens: float) -> float:
        """Prompt tokens per second one replica takes while its prompts meet the SLO.

        The profile's prefill rate times the utilization at which at most
        ``miss`` of prompts of the mean size wait past their slack (the
        size-aware objective less their own prefill). A prompt too long to
        meet the objective even alone leaves no slack; the replica is then
        given its whole rate at half utilization rather than none.
        """
        assert self.profile is not None
        rate = self.profile.prefill_tokens_per_s
        size = max(mean_prompt_tokens, 1.0)
        service = size / rate
        slack = self.ttft_s + self.ttft_s_per_token * size - service
        rho = prefill_utilization(service, slack, self.miss) if slack > 0 else 0.0
        return rate * max(rho, 0.5 if slack <= 0 else 0.05)


def work_replicas(load: Load, capacity: Capacity, current: int) -> float | None:
    """Replicas (fractional) the reported work needs; None without work metrics or a profile."""
    profile = capacity.profile
    if profile is None or not load.has_work:
        return None
    tokens_per_s = load.prompt_tokens_per_s or 0.0
    requests_per_s = load.requests_per_s or 0.0
    mean_prompt = tokens_per_s / requests_per_s if requests_per_s > 0 else 1.0
    prefill = tokens_per_s / capacity.prefill_target(mean_prompt)
    waiting = load.prefill_tokens_waiting or 0.0
    # Prompt tokens already waiting must clear within the (size-aware) objective.
    horizon = capacity.ttft_s + capacity.ttft_s_per_token * mean_prompt
    prefill += waiting / (profile.prefill_tokens_per_s * horizon)
    decode = (load.running_sequences or 0.0) / profile.decode_batch(capacity.tpot_s)
    kv = 0.0 if load.kv_usage is None else current * load.kv_usage / capacity.kv_target
    return max(prefill, decode, kv)


def desired_replicas(load: Load, capacity: Capacity, current: int) -> float:
    """Replicas (fractional) that serve ``load`` within the SLO.

    Work demand plus the spilled and handle-queued requests over ``target_ongoing_requests``
    when the replicas report work; otherwise the request count over
    ``target_ongoing_requests`` (and the KV cache). Bounds, delays and the budget are applied
    by wrappers, not here.
    """
    work = work_replicas(load, capacity, current)
    if work is not None and current > 0:
        return work + (load.spilled + load.queued) / capacity.target_ongoing_requests
    by_requests = load.demand / capacity.target_ongoing_requests
    if load.kv_usage is None or current == 0:
        return by_requests
    return max(by_requests, current * load.kv_usage / capacity.kv_target)
