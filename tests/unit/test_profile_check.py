"""`garden up` refuses a model that the garden autoscaling policy cannot size, before any start."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from cluster.app import build_app, profile_check
from cluster.config import parse_config
from cluster.exceptions import ConfigError

pytestmark = pytest.mark.unit

_DEFAULTS = Path(__file__).resolve().parents[2] / "cluster" / "defaults" / "garden.yaml"


def _embedded(**change: Any) -> dict[str, Any]:
    data = yaml.safe_load(_DEFAULTS.read_text())
    data = {k: v for k, v in data.items() if not k.startswith("x-")}
    for model in data["models"]:
        model.pop("exemplars_file", None)  # relative to the bundled folder
    code = next(m for m in data["models"] if m["name"] == "code")
    copy = {**code, "name": "code2", "domains": ["software"], **change}
    data["models"].append(copy)
    return data


def test_a_model_without_a_profile_is_a_config_error_naming_it() -> None:
    garden = parse_config(_embedded(), source="test")  # cpu-tiny knows no 'code2'
    with pytest.raises(ConfigError) as err:
        profile_check(garden)
    (problem,) = err.value.problems
    assert "models[6] ('code2')" in problem and "'cpu-tiny'" in problem
    assert "ray-default" in problem
    with pytest.raises(ConfigError):  # the declarative path (KubeRay) checks it too
        build_app(garden)


def test_ray_default_models_and_the_embedded_garden_pass() -> None:
    profile_check(parse_config(_embedded(autoscaling={"policy": "ray-default"}), source="test"))
    data = _embedded()
    data["models"].pop()
    profile_check(parse_config(data, source="test"))
