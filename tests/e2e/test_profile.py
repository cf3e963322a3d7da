"""``garden profile`` on the session garden: a real batching curve, read back by simulate."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from autoscaling.simulate import capacity_at_slo, load_profiles
from cluster.cli import _profile  # noqa: F401  (registers the command)
from cluster.cli._main import cli
from tests.conftest import TEST_API_KEY, RunningGarden

pytestmark = pytest.mark.e2e


def test_profile_measures_a_running_model_and_writes_a_simulator_profile(
    garden: RunningGarden, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The garden requires a key; its tools send $OPENAI_API_KEY, as a user exports it.
    monkeypatch.setenv("OPENAI_API_KEY", TEST_API_KEY)
    out = tmp_path / "profile.yaml"
    args = ["profile", "--model", "code", "--concurrency", "1,4", "--prompt-tokens", "200"]
    args += ["--output-tokens", "12", "--rounds", "2", "--out", str(out), "--json"]
    result = CliRunner().invoke(cli, args, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)["models"]["code"]

    curve = {p["concurrency"]: p for p in report["curve"]}
    assert sorted(curve) == [1, 4]
    assert curve[1]["requests"] == 2 and curve[4]["requests"] == 8
    assert 150 <= curve[1]["prompt_tokens"] <= 260  # sized with the model's own tokenizer
    assert all(p["ttft_p50_ms"] > 0 and p["decode_tokens_per_s"] > 0 for p in curve.values())
    # Four sequences decoding together produce more tokens per second than one.
    assert curve[4]["output_tokens_per_s"] > curve[1]["output_tokens_per_s"]

    engine = garden.config.model("code").engine
    profile = load_profiles(out).for_model("code")
    assert profile.max_batch == engine["max_num_seqs"]
    # The replica's own engine reports its KV cache: blocks x 128-token CPU blocks.
    assert profile.kv_cache_tokens == engine["num_gpu_blocks_override"] * 128
    assert profile.cold_start_s > 1  # a replica imports vLLM and loads its engine
    assert capacity_at_slo(profile, 1.0, 200, 12) >= 1
