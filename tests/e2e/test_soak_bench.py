"""``garden bench soak`` at a tiny scale on the session garden, to keep it working."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from cluster.cli import _bench  # noqa: F401  (registers the command)
from cluster.cli._main import cli
from tests.conftest import TEST_API_KEY, RunningGarden

pytestmark = pytest.mark.e2e


def test_a_short_soak_reports_its_keys_and_loses_nothing(
    garden: RunningGarden, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", TEST_API_KEY)
    args = ["bench", "soak", "--minutes", "0.5", "--users", "3", "--max-tokens", "8"]
    result = CliRunner().invoke(cli, [*args, "--out", str(tmp_path), "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.output.strip().splitlines()[-1])
    print(json.dumps(report))  # the measured figures, with -s
    assert {"errors", "requests", "router_rss_growth_mib_per_1k", "left_running"} <= set(report)
    assert report["requests"] > 10 and report["errors"] == 0, report["error_kinds"]
    assert report["left_running"] == 0  # the engines' gauges read, and nothing is left
    assert report["router_rss_mib"]["first"] > 0
    assert len(report["samples"]) >= 2
