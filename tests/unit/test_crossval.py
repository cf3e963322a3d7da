"""Cross-validation on the exemplars (both schemes) and thresholds calibrated from it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from cluster.config import GardenConfig
from router.crossval import Heldout, calibrate_thresholds, cross_validate
from router.policy import Features, PolicyConfig

pytestmark = pytest.mark.unit

POLICY = PolicyConfig(generalist="g", owners={"law": "law", "code": "code"})


def _row(label: str, domain: str, confidence: float) -> Heldout:
    return Heldout(label, "s", Features(domain, confidence))


def test_thresholds_keep_wrong_specialists_within_the_budget_at_most_coverage() -> None:
    # law wins 100 rows; wrong ones sit at confidence 0.5-0.6, right ones above.
    rows = [_row("law", "law", 0.9)] * 80 + [_row("general", "law", 0.55)] * 20
    rows += [_row("code", "code", 0.95)] * 100
    t = calibrate_thresholds(rows, POLICY, max_wrong=0.03)
    # law may send 3% x 200 x 100/200 = 3 rows wrong: every wrong row sits at 0.55.
    assert t["law"] == 0.6
    assert t["code"] == 0.3  # never wrong: the lowest threshold
    loose = calibrate_thresholds(rows, POLICY, max_wrong=0.5)
    assert loose["law"] == 0.3


def _garden(tmp_path: Path) -> GardenConfig:
    def write(name: str, rows: list[tuple[str, str]]) -> str:
        path = tmp_path / f"{name}.jsonl"
        path.write_text("".join(json.dumps({"text": t, "source": s}) + "\n" for t, s in rows))
        return str(path)

    law = [
        ("Is a verbal contract binding?", "q"),
        ("What is a tort?", "q"),
        ("landlord eviction notice rules", "kw"),
        ("statute of limitations fraud", "kw"),
    ]
    general = [("Who wrote Hamlet?", "q"), ("Why is the sky blue?", "q"),
               ("capital of Peru", "kw"), ("best pasta recipe", "kw")]  # fmt: skip
    law_model = {"name": "law", "role": "specialist", "domains": ["law"], "tiny": {}}
    law_model["exemplars_file"] = write("law", law)
    generalist = {"name": "g", "role": "generalist", "tiny": {}}
    generalist["exemplars_file"] = write("general", general)
    return GardenConfig.model_validate(
        {
            "data_dir": str(tmp_path),
            "models": [law_model, generalist],
            "router": {"classifier": {"options": {"semantic": False, "folds": 2}}},
        }
    )


def test_leave_one_source_out_holds_out_whole_sources(tmp_path: Path) -> None:
    garden = _garden(tmp_path)
    held = cross_validate(garden, "sources")
    assert sorted(h.source for h in held) == ["kw"] * 4 + ["q"] * 4
    assert {h.label for h in held} == {"law", "general"}
    folds = cross_validate(garden, "folds", folds=2)
    assert len(folds) == 8


def test_route_cv_reports_both_schemes_and_suggests_thresholds(tmp_path: Path) -> None:
    import yaml
    from click.testing import CliRunner

    from cluster.cli import _route  # noqa: F401  (registers the commands)
    from cluster.cli._main import cli

    config = tmp_path / "garden.yaml"
    config.write_text(yaml.safe_dump(_garden(tmp_path).model_dump(mode="json")))
    args = ["route-cv", "--config", str(config), "--folds", "2", "--json"]
    result = CliRunner().invoke(cli, args, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert set(report["suggested_thresholds"]) == {"law"}
    assert report["folds"]["configured"]["n"] == 8
    assert report["sources"]["per_source_accuracy"].keys() == {"kw", "q"}
    table = CliRunner().invoke(cli, args[:-1], catch_exceptions=False)
    assert table.exit_code == 0 and "cross-validation on the exemplars" in table.output
    assert "suggested router.thresholds" in table.output
