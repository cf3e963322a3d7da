"""One simulated model replica: Serve's slot limit in front of vLLM's continuous batch.

The service model, and what it leaves out:

- Serve sends a replica at most ``max_ongoing`` requests; inside, the engine
  batches at most ``max_batch`` sequences whose prompt and output fit the KV
  cache (reserved in full, so nothing is ever preempted); the rest wait.
- Prefill is one FIFO server: a prompt takes ``input_tokens /
  prefill_tokens_per_s``. Its first token comes out when its prefill ends,
  so TTFT = waiting (router, replica, prefill queue) + its own prefill.
- The decoding sequences share the GPU (processor sharing): each gets the
  profile's per-sequence rate at the current decode batch size. Prefill does
  not slow decoding down (chunked prefill's interference is ignored).
- With a prefix cache (``block_tokens``, a replay option), a prompt whose
  first blocks (``Job.blocks``, hashes of the prefix up to each block) are
  cached prefills only the rest, as vLLM's automatic prefix caching does;
  at least its last token is computed. The cache holds the KV cache's
  capacity in blocks, least recently used out first; blocks held by running
  sequences are not set apart (vLLM caches in its free blocks, so this is
  an upper bound on what stays cached).
"""

from __future__ import annotations

import heapq
from collections import OrderedDict, deque
from dataclasses import dataclass
from enum import Enum

from autoscaling.metrics import WorkMeter
from autoscaling.profile import Profile

__all__ = ["Job", "Replica", "ReplicaState"]

_EPS = 1e-9


@dataclass(slots=True, eq=False)
class Job:
    """One replayed request and what happened to it."""

    index: int
    arrival_s: float
    input_tokens: int
    output_tokens: int
    domain: str
    model: str = ""
    spilled_from: str | None = None
    #: The prompt's blocks (hashes of the prefix up to each); () without prefix caching.
    blocks: tuple[int, ...] = ()
    #: Prompt tokens served from the replica's prefix cache, not prefilled.
    cached_tokens: int = 0
    first_token_s: float | None = None
    done_s: float | None = None
    rejected: bool = False
    v_enter: float = 0.0  # the replica's decode clock when this job started decoding


class ReplicaState(Enum):
    """Where a replica is in its life."""

    STARTING = "starting"
    RUNNING = "running"
    DRAINING = "draining"


class Replica:
    """A replica's queues and batch. Methods take ``now`` and return the jobs they finished.

    After each call the engine re-arms the replica's next events from
    ``prefill_done_s``/``prefill_token`` and ``decode_done_s``/``decode_token``
    (a token changes whenever an armed time becomes stale).
    """

    def __init__(
        self,
        name: str,
        profile: Profile,
        max_ongoing: int,
        provisioned_s: float,
        ready_s: float,
        block_tokens: int | None = None,
    ) -> None:
        self.name, self.profile, self.max_ongoing = name, profile, max_ongoing
        self.block_tokens = block_tokens
        # The prefix cache (block hash -> None, least recently used first), and
        # every block routed here, which is what a prefix-aware router knows.
        self._cache: OrderedDict[int, None] = OrderedDict()
        self._cache_blocks = (
            None
            if block_tokens is None or profile.kv_cache_tokens is None
            else max(1, profile.kv_cache_tokens // block_tokens)
        )
        self.routed: set[int] = set()
        self.provisioned_s, self.ready_s = provisioned_s, ready_s
        self.state = ReplicaState.STARTING
        self.ongoing = 0  # requests Serve has sent here and not seen finish
        self._batch_limit = min(profile.max_batch, max_ongoing)
        self._kv_limit = profile.kv_cache_tokens
        self._waiting: deque[Job] = deque()  # inside the engine, not yet in the batch
        self._prefill: deque[Job] = deque()  # in the batch; the head is being prefilled
        self._decoding: list[tuple[float, int, Job]] = []  # (decode clock at finish, index, job)
        self._in_batch = 0
        self._kv_reserved = 0
        self._v = 0.0  # decode clock: tokens each decoding sequence has received
        self._vt = 0.0  # when the decode clock was last advanced
        self._rate = 0.0  # tokens/s each decoding sequence gets now
        self._dec_input = 0  # prompt tokens of the decoding sequences
        self._dec_venter = 0.0  # sum of their v_enter
        self.prefill_done_s: float | None = None
        self.prefill_token = 0
        self.decode_done_s: float | None = None
        self.decode_token = 0
        self.armed = (-1, -1)  # the engine's record of the tokens it has scheduled
        self.meter = WorkMeter(ready_s)  # the live replica's meter, on the replay's clock

    @property
    def has_slot(self) -> bool:
        """True when Serve would send this replica one more request."""
        return self.state is ReplicaState.RUNNING and self.ongoing < self.max_ongoing

    def routed_match(self, blocks: tuple[int, ...]) -> int:
        """Leading ``blocks`` this replica was sent before (a prefix-aware router's view)."""
        return _leading(blocks, self.routed)

    def assign(self, job: Job, now: float) -> None:
        """Serve hands the replica ``job``."""
        self.routed.update(job.blocks)
        self.ongoing += 1
        self.meter.arrived(job.input_tokens)
        self._waiting.append(job)
        self._admit(now)

    def kv_usage(self, now: float) -> float | None:
        """Fraction of the KV cache in use (None when the profile has no KV size)."""
        if self._kv_limit is None:
            return None
        self._sync(now)
        used = self._dec_input + len(self._decoding) * self._v - self._dec_venter
        if self._prefill:
            used += self._prefill[0].input_tokens
        return min(1.0, max(0.0, used / self._kv_limit))

    def autoscaling_stats(self, now: float) -> dict[str, float]:
        """What the live replica's ``record_autoscaling_stats`` would report now."""
        return self.meter.stats(now, float(self._in_batch), self.kv_usage(now))

    def finish_prefill(self, now: float) -> list[Job]:
        """The head prompt is prefilled: its first token is out."""
        job = self._prefill.popleft()
        job.first_token_s = now
        self.meter.prefilled(job.input_tokens)
        self._cache_blocks_of(job)
        done: list[Job] = []
        remaining = max(job.output_tokens - 1, 0)
        if remaining == 0:
            done.append(self._leave(job, now))
        else:
            self._sync(now)
            job.v_enter = self._v
            heapq.heappush(self._decoding, (self._v + remaining, job.index, job))
            self._dec_input += job.input_tokens
            self._dec_venter += self._v
        self.prefill_done_s = None
        self._admit(now)
        self._start_prefill(now)
        self._reschedule_decode(now)
        return done

    def finish_decode(self, now: float) -> list[Job]:
        """Every sequence whose last token is due by ``now`` completes."""
        self._sync(now)
        done: list[Job] = []
        while self._decoding and self._decoding[0][0] <= self._v + _EPS:
            _, _, job = heapq.heappop(self._decoding)
            self._dec_input -= job.input_tokens
            self._dec_venter -= job.v_enter
            done.append(self._leave(job, now))
        self._admit(now)
        self._reschedule_decode(now)
        return done

    def _leave(self, job: Job, now: float) -> Job:
        job.done_s = now
        self.ongoing -= 1
        self._in_batch -= 1
        self._kv_reserved -= job.input_tokens + job.output_tokens
        return job

    def _admit(self, now: float) -> None:
        while self._waiting and self._in_batch < self._batch_limit:
            job = self._waiting[0]
            need = job.input_tokens + job.output_tokens
            fits = self._kv_limit is None or self._kv_reserved + need <= self._kv_limit
            if not fits and self._in_batch > 0:
                break  # wait for room; an empty batch takes any request
            self._waiting.popleft()
            self._in_batch += 1
            self._kv_reserved += need
            self._prefill.append(job)
        self._start_prefill(now)

    def _start_prefill(self, now: float) -> None:
        if self.prefill_done_s is None and self._prefill:
            job = self._prefill[0]
            if self.block_tokens is not None and job.blocks:
                hit = _leading(job.blocks, self._cache)
                job.cached_tokens = min(hit * self.block_tokens, max(job.input_tokens - 1, 0))
            tokens = job.input_tokens - job.cached_tokens
            self.prefill_done_s = now + tokens / self.profile.prefill_tokens_per_s
            self.prefill_token += 1

    def _cache_blocks_of(self, job: Job) -> None:
        if self.block_tokens is None:
            return
        for block in job.blocks:
            self._cache[block] = None
            self._cache.move_to_end(block)
        while self._cache_blocks is not None and len(self._cache) > self._cache_blocks:
            self._cache.popitem(last=False)

    def _sync(self, now: float) -> None:
        if now > self._vt:
            self._v += (now - self._vt) * self._rate
            self._vt = now

    def _reschedule_decode(self, now: float) -> None:
        self._sync(now)
        self.decode_token += 1
        if not self._decoding:
            self._rate, self.decode_done_s = 0.0, None
            return
        self._rate = self.profile.decode_rate(len(self._decoding))
        self.decode_done_s = now + max(0.0, self._decoding[0][0] - self._v) / self._rate


def _leading(blocks: tuple[int, ...], held: set[int] | OrderedDict[int, None]) -> int:
    """How many of ``blocks``, from the first, are in ``held``."""
    n = 0
    for block in blocks:
        if block not in held:
            break
        n += 1
    return n
