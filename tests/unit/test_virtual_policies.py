"""Virtual models' policies come from the config, overrides included."""

from __future__ import annotations

import pytest

from cluster.config import GardenConfig, load_config
from router.virtual import virtual_policies

pytestmark = pytest.mark.unit


def _garden(virtual: list[dict[str, object]]) -> GardenConfig:
    data = load_config(None).model_dump(mode="json")
    data["router"].update(thresholds={"law": 0.7}, virtual_models=virtual)
    return GardenConfig.model_validate(data)


def test_each_virtual_model_gets_its_policy() -> None:
    policies = virtual_policies(
        _garden(
            [
                {"name": "auto"},
                {
                    "name": "strict",
                    "fallback": False,
                    "default_threshold": 0.8,
                    "thresholds": {"code": 0.9},
                },
            ]
        )
    )
    auto, strict = policies["auto"], policies["strict"]
    assert auto.spill and not strict.spill
    assert auto.generalist == strict.generalist == "generalist"
    assert auto.owners["law"] == "law"
    assert (auto.threshold("law"), auto.threshold("code")) == (0.7, 0.5)
    assert (strict.threshold("law"), strict.threshold("code"), strict.threshold("x")) == (
        0.7,
        0.9,
        0.8,
    )


def test_the_default_garden_has_auto_and_a_never_fallback_model() -> None:
    policies = virtual_policies(load_config(None))
    assert list(policies) == ["auto", "auto-strict"]
    assert policies["auto"].spill and not policies["auto-strict"].spill
