"""The locustfile under real Locust (a subprocess) against a fake OpenAI server; no Ray.

Each run takes a few seconds: Locust starts, runs 1-3 s and writes its reports.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from click.testing import CliRunner

from cluster.cli import _loadtest  # noqa: F401  (registers the command)
from cluster.cli._main import cli
from loadtest.run import LoadTest, run_loadtest
from loadtest.summary import SLO, read_records
from tests._fake_openai import fake_openai

pytestmark = pytest.mark.unit


def test_steady_paced_run_reports_timings_and_routing(tmp_path: Path) -> None:
    with fake_openai() as url:
        test = LoadTest(host=url, users=2, duration_s=3, rate=4.0, max_tokens=8)
        summary = run_loadtest(test, tmp_path, {"fake-what": SLO(1000, 100)})
    assert summary["locust_exit_code"] == 0 and summary["failures"]["count"] == 0
    # 2 users paced to 4 requests/s for ~3 s: about 12, never back to back (hundreds).
    assert 6 <= summary["requests"] <= 16, summary["requests"]
    assert summary["ttft_ms"]["p50"] > 0 and summary["tpot_ms"]["p50"] >= 4  # 5 ms per token
    assert summary["throughput"]["output_tokens"] == 8 * summary["requests"]
    assert summary["routing"]["reason"]["specialist"]["share"] == 1.0
    assert all(m.startswith("fake-") for m in summary["routing"]["model"])
    assert json.loads((tmp_path / "summary.json").read_text()) == summary
    with (tmp_path / "locust_stats.csv").open() as f:
        rows = list(csv.DictReader(f))
    types = {r["Type"] for r in rows}
    assert {"POST", "TTFT", "TPOT", "E2E", "MODEL", "REASON"} <= types
    posts = sum(int(r["Request Count"]) for r in rows if r["Type"] == "POST")
    assert posts == summary["requests"]
    assert (tmp_path / "locust.html").stat().st_size > 0


def _serve_state(run_dir: Path, url: str) -> None:
    parts = urlsplit(url)
    run_dir.mkdir(parents=True, exist_ok=True)
    state = {"address": "127.0.0.1:6379", "app": "garden", "host": parts.hostname,
             "port": parts.port, "owns_cluster": False}  # fmt: skip
    (run_dir / "garden.json").write_text(json.dumps(state))


@pytest.mark.parametrize(
    ("model", "error"), [("broken", "stream ended without [DONE]"), ("missing", "HTTP 404")]
)
def test_failed_requests_fail_the_command(
    isolated_run_dir: Path, tmp_path: Path, model: str, error: str
) -> None:
    with fake_openai() as url:
        _serve_state(isolated_run_dir, url)
        args = ["loadtest", "--users", "1", "--duration", "1s", "--model", model]
        result = CliRunner().invoke(cli, [*args, "--out", str(tmp_path / "out"), "--json"])
    assert result.exit_code == 1
    summary = json.loads(result.stdout)
    assert summary["failures"]["count"] == summary["requests"] > 0
    assert all(e.startswith(error) for e in summary["failures"]["errors"]), summary["failures"]


def test_burst_shape_leaves_idle_gaps(isolated_run_dir: Path, tmp_path: Path) -> None:
    with fake_openai() as url:
        _serve_state(isolated_run_dir, url)
        args = ["loadtest", "--users", "2", "--duration", "3s", "--shape", "burst"]
        args += ["--burst", "1", "--idle", "1", "--max-tokens", "4", "--out", str(tmp_path)]
        result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    assert "TTFT" in result.stdout and "model " in result.stdout
    rows = read_records(tmp_path / "records.jsonl")
    begin = next(r["t"] for r in rows if r.get("kind") == "start")
    offsets = sorted(r["start"] - begin for r in rows if "kind" not in r)
    # Requests in [0, 1) and [2, 3) s; none starts in the idle second between.
    assert offsets and not [t for t in offsets if 1.2 < t < 1.9], offsets
    assert any(t >= 1.9 for t in offsets), offsets


def test_multi_turn_users_send_back_the_earlier_turns(tmp_path: Path) -> None:
    # Each turn carries the earlier prompts and the answers they got, so the
    # fake's prompt token count (words of all messages) grows turn by turn.
    with fake_openai() as url:
        test = LoadTest(host=url, users=1, duration_s=3, max_tokens=4, turns=3)
        summary = run_loadtest(test, tmp_path, {})
    assert summary["locust_exit_code"] == 0 and summary["failures"]["count"] == 0
    rows = [r for r in read_records(tmp_path / "records.jsonl") if "kind" not in r]
    assert [r["turn"] for r in rows[:6]] == [1, 2, 3, 1, 2, 3]
    first, second, third = rows[:3]
    answer = 4  # words: "w0 w1 w2 w3"
    assert second["prompt_tokens"] > first["prompt_tokens"] + answer
    assert third["prompt_tokens"] > second["prompt_tokens"] + answer
    assert len({r["prompt_domain"] for r in rows[:3]}) == 1  # one chat, one domain
    assert set(summary["ttft_ms_by_turn"]) == {"1", "2", "3"}
