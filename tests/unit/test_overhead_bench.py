"""The overhead benchmark's pure parts: the vLLM command line, summaries and ratios."""

from __future__ import annotations

import json
from collections import Counter
from itertools import pairwise

import pytest

from cluster.config import load_config
from loadtest.bench._streams import Round, Sample, summarize
from loadtest.bench.overhead import SETUPS, ratio_spread, ratios, round_orders, vllm_command

pytestmark = pytest.mark.unit


def test_vllm_gets_the_gardens_engine_arguments_as_flags() -> None:
    spec = load_config(None).model("code")
    command = vllm_command("/models/code", spec, 8123)
    assert command[1:3] == ["-m", "vllm.entrypoints.openai.api_server"]
    joined = " ".join(command)
    assert "--model /models/code --served-model-name code" in joined
    assert "--port 8123" in joined
    assert "--max-num-seqs 32" in joined and "--max-model-len 2048" in joined
    assert "--enforce-eager" in command  # a true flag takes no value
    assert "--num-gpu-blocks-override 512" in joined
    # A nested config goes as JSON, which vLLM's CLI parses (not Python's repr).
    flag = command.index("--structured-outputs-config")
    assert json.loads(command[flag + 1]) == spec.engine["structured_outputs_config"]


def test_summary_counts_failures_and_takes_percentiles_of_the_rest() -> None:
    ok = [Sample(0.1 * i, 1.0 + 0.1 * i, ok=True) for i in range(1, 10)]
    rounds = [Round([*ok[:5], Sample(9, 9, ok=False)], 2.0), Round(ok[5:], 1.0)]
    s = summarize(rounds)
    assert (s["requests"], s["failures"]) == (10, 1)
    assert s["p50_ttft_ms"] == pytest.approx(500)
    assert s["p99_e2e_ms"] == pytest.approx(1900)
    assert s["throughput_rps"] == pytest.approx(3.0)  # 9 good requests in 3 s


def test_ratios_divide_the_named_setups() -> None:
    base = {"p50_ttft_ms": 10.0, "p50_e2e_ms": 100.0, "p99_e2e_ms": 200.0, "throughput_rps": 20}
    setups = {name: dict(base) for name in SETUPS}
    setups["garden_auto"] = {**base, "p50_e2e_ms": 110.0, "throughput_rps": 18}
    r = ratios(setups)
    assert set(r) == {
        "garden_explicit/ray_llm",
        "garden_auto/ray_llm",
        "garden_auto/vllm",
        "garden_explicit/vllm",
        "garden_auto/garden_explicit",
        "ray_llm_lean/ray_llm",
        "garden_explicit/ray_llm_lean",
        "garden_auto/ray_llm_lean",
    }
    assert r["garden_auto/garden_explicit"]["throughput"] == 0.9
    assert r["garden_auto/ray_llm"] == {
        "p50_ttft": 1.0,
        "p99_itl": None,  # no setup has the figure
        "p50_e2e": 1.1,
        "p99_e2e": 1.0,
        "throughput": 0.9,
    }
    assert r["garden_explicit/vllm"]["throughput"] == 1.0


def test_ratios_leave_out_a_setup_that_did_not_run() -> None:
    setups = {name: {"throughput_rps": 10.0} for name in SETUPS if name != "garden_auto"}
    assert not [name for name in ratios(setups) if "garden_auto" in name]
    assert "garden_explicit/vllm" in ratios(setups)


def test_inter_token_latency_is_the_gap_between_chunks_pooled_over_requests() -> None:
    gaps = [(0.01, 0.02), (0.03,), ()]  # a one-chunk stream has no gap
    samples = [Sample(0.1, 1.0, ok=True, itls_s=g) for g in gaps]
    s = summarize([Round([*samples, Sample(9, 9, ok=False, itls_s=(5.0,))], 1.0)])
    assert s["p50_itl_ms"] == pytest.approx(20)
    assert s["p99_itl_ms"] == pytest.approx(30)  # the failed request's gap is not counted


def test_vllm_clients_rounds_pool_raw_times_and_sum_durations() -> None:
    from loadtest.bench._vllm_client import summarize_vllm

    def one(ttfts: list[float], itls: list[list[float]], failed: int) -> dict[str, object]:
        return {
            "duration": 2.0,
            "completed": len(ttfts) - failed,
            "failed": failed,
            "ttfts": ttfts,
            "itls": itls,
            "latencies": [t + sum(g) for t, g in zip(ttfts, itls, strict=True)],
            "output_throughput": 50.0,
        }

    # vLLM's client records a failed request with ttft 0 and no gaps.
    rounds = [one([0.1, 0.2], [[0.01, 0.05], [0.02]], 0), one([0.3, 0.0], [[0.03], []], 1)]
    s = summarize_vllm(rounds)
    assert (s["requests"], s["failures"]) == (4, 1)
    assert s["p50_ttft_ms"] == pytest.approx(200)
    assert s["p50_itl_ms"] == pytest.approx(25)  # median of 10, 20, 30, 50 ms
    assert s["p99_itl_ms"] == pytest.approx(50)
    assert s["throughput_rps"] == pytest.approx(0.75)  # 3 completed in 4 s
    assert s["output_tokens_per_s"] == pytest.approx(50.0)
    assert summarize_vllm([one([0.0], [[]], 1)]) == {"requests": 1, "failures": 1}


def test_vllm_clients_command_line_keeps_a_route_prefix_and_the_api_key() -> None:
    from loadtest.bench._vllm_client import VllmRounds, _argv

    target = ("ray_llm", "http://127.0.0.1:8000/bench-ray-llm/v1", "code", "sk-1")
    spec = VllmRounds(targets=[target], tokenizer="/models/code", orders=[[0]], rounds=1)
    argv = _argv(target, spec, seed=3)

    def flag(name: str) -> str:
        return argv[argv.index(name) + 1]

    assert flag("--base-url") == "http://127.0.0.1:8000"
    assert flag("--endpoint") == "/bench-ray-llm/v1/chat/completions"
    assert (flag("--backend"), flag("--seed"), flag("--model")) == ("openai-chat", "3", "code")
    assert flag("--header") == "Authorization=Bearer sk-1"
    keyless = ("vllm", "http://127.0.0.1:9000/v1", "code", "")
    assert "--header" not in _argv(keyless, spec, seed=0)


@pytest.mark.parametrize("n", [2, 3, 4, 5, 6])
def test_every_setup_follows_every_other_equally_often(n: int) -> None:
    orders = round_orders(n)
    assert all(sorted(order) == list(range(n)) for order in orders)
    follows = Counter((a, b) for order in orders for a, b in pairwise(order))
    assert set(follows) == {(a, b) for a in range(n) for b in range(n) if a != b}
    assert len(set(follows.values())) == 1
    assert len(set(Counter(order[0] for order in orders).values())) == 1


def test_a_ratio_over_runs_is_its_min_median_and_max() -> None:
    runs = [
        {"garden_auto/vllm": {"throughput": 0.9, "p50_ttft": 1.4}},
        {"garden_auto/vllm": {"throughput": 0.8, "p50_ttft": None}},  # a run without TTFTs
        {"garden_auto/vllm": {"throughput": 0.95, "p50_ttft": 1.2}},
    ]
    spread = ratio_spread(runs)["garden_auto/vllm"]
    assert spread["throughput"] == {"min": 0.8, "median": 0.9, "max": 0.95}
    assert spread["p50_ttft"] is None  # not a spread over two runs passed off as three
    even = ratio_spread([{"r": {"x": 1.0}}, {"r": {"x": 2.0}}])
    assert even == {"r": {"x": {"min": 1.0, "median": 1.5, "max": 2.0}}}


def test_the_setups_of_several_runs_are_their_medians_failures_summed() -> None:
    from loadtest.bench.overhead import _median_setups

    runs = [
        {"setups": {"vllm": {"p50_ttft_ms": v, "failures": f, "note": "x"}}}
        for v, f in ((10.0, 0), (30.0, 2), (20.0, 1))
    ]
    assert _median_setups(runs) == {"vllm": {"p50_ttft_ms": 20.0, "failures": 3, "note": "x"}}
