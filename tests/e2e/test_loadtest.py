"""``garden loadtest`` on the session garden: a short headless Locust run through the router."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from cluster.cli import _loadtest  # noqa: F401  (registers the command)
from cluster.cli._main import cli
from router.policy import Reason
from tests.conftest import TEST_API_KEY, RunningGarden

pytestmark = pytest.mark.e2e


def test_loadtest_streams_through_the_router_without_failures(
    garden: RunningGarden, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The garden requires a key; its tools send $OPENAI_API_KEY, as a user exports it.
    monkeypatch.setenv("OPENAI_API_KEY", TEST_API_KEY)
    out = tmp_path / "report"
    args = ["loadtest", "--users", "3", "--duration", "20s", "--max-tokens", "16"]
    args += ["--out", str(out), "--json"]
    result = CliRunner().invoke(cli, args, catch_exceptions=False)
    assert result.exit_code == 0, result.output + (out / "locust.log").read_text()[-3000:]
    summary = json.loads(result.output)
    print(json.dumps(summary, indent=1))  # the measured figures, with -s

    assert summary["requests"] > 0 and summary["failures"]["count"] == 0
    for key in ("ttft_ms", "tpot_ms", "e2e_ms"):
        row = summary[key]
        assert row["count"] > 0 and 0 < row["p50"] <= row["p90"] <= row["p99"], (key, row)
    assert summary["throughput"]["output_tokens_per_s"] > 0
    assert 0 <= summary["goodput"]["share"] <= 1

    # Routed ids: the models, and the test garden's domain-owning adapter (<model>:<adapter>).
    models = {m.name for m in garden.config.models} | set(garden.config.domain_owners().values())
    shares = summary["routing"]["model"]
    assert set(shares) <= models and len(shares) >= 2  # five domains reach several models
    assert sum(s["count"] for s in shares.values()) == summary["requests"]
    assert set(summary["routing"]["reason"]) <= {r.value for r in Reason}

    # Locust's own reports carry the custom TTFT/TPOT/E2E events.
    with (out / "locust_stats.csv").open() as f:
        types = {row["Type"] for row in csv.DictReader(f)}
    assert {"TTFT", "TPOT", "E2E", "MODEL", "REASON"} <= types
    assert (out / "locust.html").stat().st_size > 0
