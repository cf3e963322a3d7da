"""The GPU decode benchmark's smoke test, on the CPU with a tiny Llama shape."""

from __future__ import annotations

import json
import sys

import pytest

from loadtest.bench import gpu_decode

pytestmark = pytest.mark.unit

TINY = "--layers 2 --hidden 128 --heads 2 --kv-heads 1 --head-dim 64 --ffn 256 --vocab 100"


def test_it_prints_prefill_and_per_batch_decode_speeds(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    args = f"{TINY} --context 32 --prompt 32 --reps 2 --batches 1,4".split()
    monkeypatch.setattr(sys, "argv", ["gpu_decode", *args])
    gpu_decode.main()
    out = json.loads(capsys.readouterr().out)
    assert out["device"] == "cpu" and out["prefill_tokens_per_s"] > 0
    assert set(out["decode"]) == {"1", "4"}
    assert all(d["step_ms"] > 0 for d in out["decode"].values())
