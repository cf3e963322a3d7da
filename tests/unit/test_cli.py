"""The `garden` CLI's errors: exit codes and messages that say what to do.

Every case here fails before Ray starts, which is the point: config and
preflight problems surface at `garden up`, not minutes into a deploy.
"""

from __future__ import annotations

import json
import socket
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner

from cluster.cli._main import cli
from cluster.config import default_config_text

pytestmark = pytest.mark.unit


def _run(*args: str) -> Any:
    from cluster.cli import _bench, _config, _models, _run  # noqa: F401  (register commands)

    return CliRunner().invoke(cli, list(args), catch_exceptions=False)


def _write(tmp_path: Path, data: dict[str, Any]) -> str:
    path = tmp_path / "garden.yaml"
    path.write_text(yaml.safe_dump(data))
    return str(path)


def _default() -> dict[str, Any]:
    return dict(json.loads(json.dumps(yaml.safe_load(default_config_text()))))


def test_schema_prints_json_schema() -> None:
    result = _run("config", "schema")
    assert result.exit_code == 0
    assert json.loads(result.output)["title"] == "GardenConfig"


def test_validate_accepts_the_default(tmp_path: Path) -> None:
    result = _run("config", "validate", _write(tmp_path, _default()))
    assert result.exit_code == 0, result.output
    assert "6 models" in result.output


def test_bad_config_exits_2_with_key_path(tmp_path: Path) -> None:
    data = _default()
    data["models"][3]["limits"]["max_queued_requests"] = -5
    result = _run("config", "validate", _write(tmp_path, data))
    assert result.exit_code == 2
    assert "models[3].limits.max_queued_requests" in result.output
    assert "-5" in result.output


def test_up_with_bad_config_exits_2_before_starting(tmp_path: Path, isolated_run_dir: Path) -> None:
    data = _default()
    data["router"]["prot"] = 1
    result = _run("up", "--config", _write(tmp_path, data))
    assert result.exit_code == 2
    assert "router.prot: unknown key" in result.output
    assert not (isolated_run_dir / "ray.log").exists()


def test_up_names_the_model_whose_checkpoint_is_missing(
    tmp_path: Path, isolated_run_dir: Path
) -> None:
    data = _default()
    law = data["models"][1]
    law.pop("tiny")
    law["source"] = str(tmp_path / "no-such-checkpoint")
    result = _run("up", "--config", _write(tmp_path, data))
    assert result.exit_code == 1
    assert "model 'law'" in result.output
    assert "no-such-checkpoint" in result.output
    assert not (isolated_run_dir / "ray.log").exists()


def test_up_says_when_the_port_is_in_use(
    tmp_path: Path, isolated_run_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GARDEN_DATA_DIR", str(tmp_path / "data"))
    data = _default()
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        data["router"]["port"] = busy.getsockname()[1]
        for m in data["models"]:  # point every model at a checkpoint that exists
            m.pop("tiny")
            m["source"] = str(tmp_path / "ckpt")
        (tmp_path / "ckpt").mkdir()
        (tmp_path / "ckpt" / "config.json").write_text("{}")
        result = _run("up", "--config", _write(tmp_path, data))
    assert result.exit_code == 1
    assert f"port {data['router']['port']}" in result.output and "in use" in result.output
    assert not (isolated_run_dir / "ray.log").exists()


def test_status_without_a_garden_says_how_to_start_one(isolated_run_dir: Path) -> None:
    result = _run("status")
    assert result.exit_code == 1
    assert "garden up" in result.output
