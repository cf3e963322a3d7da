"""`garden route-eval --plot`: a PNG with the confusion matrix and confidence histogram.

Uses a tiny garden whose classifier is the cascade's lexical stage only
(``semantic: false``): no torch, a fit of a few exemplars.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner

from cluster.cli._main import cli

pytestmark = pytest.mark.unit

LAW = ["Is a verbal contract binding?", "What is a tort?", "Can my landlord evict me?"]
GENERAL = ["Who wrote Hamlet?", "Why is the sky blue?", "What is the capital of Peru?"]


def _run(*args: str) -> Any:
    from cluster.cli import _route  # noqa: F401  (registers the commands)

    return CliRunner().invoke(cli, list(args), catch_exceptions=False)


def _files(tmp_path: Path) -> tuple[str, str]:
    def model(name: str, domains: list[str], exemplars: list[str]) -> dict[str, Any]:
        role = "specialist" if domains else "generalist"
        return {"name": name, "role": role, "domains": domains, "exemplars": exemplars, "tiny": {}}

    config = {
        "data_dir": str(tmp_path / "data"),
        "models": [model("law", ["law"], LAW), model("generalist", [], GENERAL)],
        "router": {"classifier": {"options": {"semantic": False}}},
    }
    config_path = tmp_path / "garden.yaml"
    config_path.write_text(yaml.safe_dump(config))
    rows = [{"prompt": p, "domain": "law"} for p in LAW] + [
        {"prompt": p, "domain": "general"} for p in GENERAL
    ]
    data_path = tmp_path / "rows.jsonl"
    data_path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return str(config_path), str(data_path)


def test_plot_writes_a_png_and_json_reports_stage_share(tmp_path: Path) -> None:
    config, data = _files(tmp_path)
    png = tmp_path / "eval.png"
    result = _run("route-eval", "--config", config, "--data", data, "--json", "--plot", str(png))
    assert result.exit_code == 0, result.output
    metrics = json.loads(result.output)
    assert metrics["n"] == 6
    assert metrics["stage_share"] == {"lexical": 1.0}
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert png.stat().st_size > 10_000


def test_plot_without_matplotlib_is_a_clear_usage_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config, data = _files(tmp_path)
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import now raises ImportError
    result = _run("route-eval", "--config", config, "--data", data, "--plot", "x.png")
    assert result.exit_code == 2
    assert "matplotlib" in result.output and "model-garden[eval]" in result.output
