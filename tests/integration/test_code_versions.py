"""Code versions: a redeploy restarts only the deployments whose code or arguments changed.

Building the application needs a connected Ray (Ray Serve LLM reads the
driver's runtime env), hence the session garden; nothing is deployed.
"""

from __future__ import annotations

import pytest

from cluster.app import build_app
from cluster.config import GardenConfig
from cluster.ray_internals import code_version_of
from tests.conftest import RunningGarden

pytestmark = pytest.mark.integration


def test_a_deployments_code_version_follows_what_it_runs_not_its_autoscaling(
    garden: RunningGarden,
) -> None:
    config = garden.config
    held = build_app(config, held={"law"})
    plain = build_app(config)
    assert code_version_of(held) == code_version_of(plain)  # the router: same config
    models = {name: code_version_of(m) for name, m in _models(plain).items()}
    assert {name: code_version_of(m) for name, m in _models(held).items()} == models
    assert len(set(models.values())) == len(models)  # each model its own
    data = config.model_dump(mode="json")
    data["models"][0]["engine"] = {**data["models"][0]["engine"], "max_num_seqs": 3}
    changed = build_app(GardenConfig.model_validate(data))
    assert code_version_of(changed) != code_version_of(plain)
    moved = {name: code_version_of(m) for name, m in _models(changed).items()}
    first = config.models[0].name
    assert moved[first] != models[first]
    assert {n: v for n, v in moved.items() if n != first} == {
        n: v for n, v in models.items() if n != first
    }


def _models(app: object) -> dict[str, object]:
    # The router's first argument: each model's bound deployment.
    models: dict[str, object] = app._bound_deployment._replica_config.init_args[0]  # type: ignore[attr-defined]
    return models
