"""The custom autoscaling metrics a model replica reports, and the meter that makes them.

A replica's ``record_autoscaling_stats`` returns :meth:`WorkMeter.stats`;
Ray Serve samples it every record interval, and its controller hands the
policy each metric's look-back mean per replica
(``AutoscalingContext.aggregated_metrics``). The simulator's replicas keep
the same meter, so the policy sees the same signals in a replay.

vLLM's scheduler stats give running and waiting requests and KV usage, but
no count of waiting prompt tokens, so the meter counts them itself: a
request's prompt tokens wait from its arrival at the replica until its
first token (or its end, if it never makes one).
"""

from __future__ import annotations

import threading

__all__ = [
    "KV_USAGE_METRIC",
    "PREFILL_TOKENS_WAITING_METRIC",
    "PROMPT_TOKENS_PER_S_METRIC",
    "REQUESTS_PER_S_METRIC",
    "RUNNING_SEQUENCES_METRIC",
    "WORK_METRICS",
    "WorkMeter",
]

#: Fraction of the replica's KV cache in use.
KV_USAGE_METRIC = "kv_cache_usage"
#: Prompt tokens that arrived per second since the last sample.
PROMPT_TOKENS_PER_S_METRIC = "prompt_tokens_per_s"
#: Requests that arrived per second since the last sample.
REQUESTS_PER_S_METRIC = "requests_per_s"
#: Prompt tokens of the requests without a first token yet (waiting or prefilling).
PREFILL_TOKENS_WAITING_METRIC = "prefill_tokens_waiting"
#: Sequences in the engine's batch (prefilling or decoding).
RUNNING_SEQUENCES_METRIC = "running_sequences"

WORK_METRICS = (
    PROMPT_TOKENS_PER_S_METRIC,
    REQUESTS_PER_S_METRIC,
    PREFILL_TOKENS_WAITING_METRIC,
    RUNNING_SEQUENCES_METRIC,
)


class WorkMeter:
    """Counts one replica's prompt work; thread-safe (the replica's loops may differ).

    ``started_s`` is when counting began, on the clock later passed to
    :meth:`stats`.
    """

    def __init__(self, started_s: float) -> None:
        self._lock = threading.Lock()
        self._tokens = 0  # prompt tokens arrived since the last sample
        self._requests = 0
        self._waiting = 0  # prompt tokens without a first token
        self._since = started_s

    def arrived(self, prompt_tokens: int) -> None:
        """A request with ``prompt_tokens`` reached the engine."""
        with self._lock:
            self._tokens += prompt_tokens
            self._requests += 1
            self._waiting += prompt_tokens

    def prefilled(self, prompt_tokens: int) -> None:
        """A request's first token is out (or it ended without one): its prompt waits no more."""
        with self._lock:
            self._waiting = max(0, self._waiting - prompt_tokens)

    def stats(
        self, now_s: float, running_sequences: float | None, kv_usage: float | None
    ) -> dict[str, float]:
        """The metrics now: arrival rates since the last call, and the gauges."""
        with self._lock:
            elapsed = now_s - self._since
            if elapsed <= 0:
                tokens_per_s = requests_per_s = 0.0
            else:
                tokens_per_s, requests_per_s = self._tokens / elapsed, self._requests / elapsed
                self._tokens = self._requests = 0
                self._since = now_s
            out = {
                PROMPT_TOKENS_PER_S_METRIC: tokens_per_s,
                REQUESTS_PER_S_METRIC: requests_per_s,
                PREFILL_TOKENS_WAITING_METRIC: float(self._waiting),
            }
        if running_sequences is not None:
            out[RUNNING_SEQUENCES_METRIC] = float(running_sequences)
        if kv_usage is not None:
            out[KV_USAGE_METRIC] = kv_usage
        return out
