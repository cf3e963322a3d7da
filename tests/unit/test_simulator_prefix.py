"""Prefix reuse in the simulator: cached blocks skip their prefill, and the prefix-aware pick."""

from __future__ import annotations

from pathlib import Path

import pytest

from autoscaling.profile import Profile
from autoscaling.simulate import Request, TraceError, read_trace, simulate
from autoscaling.simulate._garden import ModelRun
from autoscaling.simulate._replica import Job, Replica, ReplicaState
from tests.unit.test_simulator import _garden, _profiles

pytestmark = pytest.mark.unit

#: 10,000 prompt tokens a second; room for 64 blocks of 16 tokens.
PROFILE = Profile(
    max_batch=8,
    prefill_tokens_per_s=10_000,
    decode_tokens_per_s_at_batch={1: 50},
    cold_start_s=10,
    kv_cache_tokens=1024,
)


def _replica(name: str = "r1", block_tokens: int | None = 16) -> Replica:
    replica = Replica(name, PROFILE, 8, provisioned_s=0, ready_s=0, block_tokens=block_tokens)
    replica.state = ReplicaState.RUNNING
    return replica


def _job(index: int, blocks: tuple[int, ...], tokens: int = 1000) -> Job:
    return Job(index, 0.0, tokens, 1, "general", blocks=blocks)


def test_a_prompt_whose_first_blocks_are_cached_prefills_only_the_rest() -> None:
    replica = _replica()
    replica.assign(_job(0, tuple(range(60))), now=0.0)
    assert replica.prefill_done_s == pytest.approx(0.1)  # 1000 tokens, nothing cached
    replica.finish_prefill(0.1)
    second = _job(1, (*range(50), 99))  # 50 leading blocks shared, then its own
    replica.assign(second, now=1.0)
    assert second.cached_tokens == 800
    assert replica.prefill_done_s == pytest.approx(1.0 + 200 / 10_000)
    replica.finish_prefill(1.02)
    whole = _job(2, tuple(range(60)), tokens=960)  # entirely cached: its last token is computed
    replica.assign(whole, now=2.0)
    assert whole.cached_tokens == 959


def test_the_cache_holds_the_kv_capacity_least_recently_used_out_first() -> None:
    replica = _replica()
    replica.assign(_job(0, tuple(range(64))), now=0.0)
    replica.finish_prefill(0.1)
    replica.assign(_job(1, tuple(range(100, 110))), now=1.0)  # evicts blocks 0..9
    replica.finish_prefill(1.1)
    late = _job(2, tuple(range(64)))
    replica.assign(late, now=2.0)
    assert late.cached_tokens == 0  # its first block went: no leading match


def test_without_block_tokens_nothing_is_cached() -> None:
    replica = _replica(block_tokens=None)
    replica.assign(_job(0, (1, 2, 3)), now=0.0)
    replica.finish_prefill(0.1)
    again = _job(1, (1, 2, 3))
    replica.assign(again, now=1.0)
    assert again.cached_tokens == 0


def _run(prefix_aware: bool) -> ModelRun:
    garden = _garden()
    run = ModelRun(garden.models[0], PROFILE, deployment=None, look_back_s=10)  # type: ignore[arg-type]
    run.prefix_aware = prefix_aware
    run.replicas = [_replica("a"), _replica("b"), _replica("c")]
    return run


def test_the_prefix_aware_pick_follows_the_prefix_then_the_smallest_tenant() -> None:
    run = _run(prefix_aware=True)
    a, b, c = run.replicas
    b.assign(_job(0, (1, 2, 3, 4)), now=0.0)
    c.assign(_job(1, (7, 8)), now=0.0)
    # b was sent the prefix: it wins although it is busier than a.
    assert run.free_replica(_job(2, (1, 2, 3, 9))) is b
    # No replica matches 10 %: the one sent the fewest blocks (a, none).
    assert run.free_replica(_job(3, (40, 41))) is a
    # Power of two (the default): the least busy, whatever the prefix.
    assert _run(prefix_aware=False).free_replica(_job(2, (1, 2, 3, 9))) is not None
    plain = _run(prefix_aware=False)
    plain.replicas[1].assign(_job(0, (1, 2, 3, 4)), now=0.0)
    assert plain.free_replica(_job(2, (1, 2, 3, 9))) is plain.replicas[0]


def test_the_trace_keeps_mooncakes_block_hashes(tmp_path: Path) -> None:
    trace = tmp_path / "t.jsonl"
    trace.write_text(
        '{"timestamp": 0, "input_length": 1024, "output_length": 2, "hash_ids": [5, 6]}\n'
        '{"timestamp": 10, "input_length": 512, "output_length": 2, "hash_ids": [5]}\n'
    )
    assert [r.blocks for r in read_trace(trace, "mooncake")] == [(5, 6), (5,)]
    trace.write_text('{"timestamp": 0, "input_length": 1, "output_length": 2, "hash_ids": ["x"]}\n')
    with pytest.raises(TraceError, match=r"t.jsonl:1: hash_ids must be a list of integers"):
        read_trace(trace, "mooncake")


def test_without_the_option_block_hashes_change_nothing() -> None:
    plain = [Request(float(t), 1000, 20) for t in range(0, 120, 2)]
    hashed = [Request(r.arrival_s, 1000, 20, blocks=(1, 2)) for r in plain]
    keep = {"mix": {"code": 3, "general": 1}}
    assert simulate(hashed, _garden(), _profiles(), **keep) == simulate(
        plain, _garden(), _profiles(), **keep
    )
    cached = simulate(hashed, _garden(), _profiles(), prefix_cache=True, **keep)
    assert cached["prefix_cache"]["cached_prompt_share"] > 0.5
    assert cached["ttft_p50_ms"] < simulate(plain, _garden(), _profiles(), **keep)["ttft_p50_ms"]
