"""The offline checks of tests/_kube.py can fail: each catches what it is there to catch."""

from __future__ import annotations

import pytest
import yaml

from tests._kube import (
    CRD,
    builtin_problems,
    crd_problems,
    kuberay_rule_problems,
    one,
    render_chart,
    serve_config_problems,
)

pytestmark = [
    pytest.mark.unit,
    pytest.mark.skipif(not CRD.is_file(), reason=f"KubeRay's CRD is not at {CRD}"),
]


def test_crd_check_catches_fields_the_operator_would_drop() -> None:
    rayservice = one(render_chart(None), "RayService")
    rayservice["spec"]["rayClusterConfig"]["headGroupSpec"]["rayStartparams"] = {}
    rayservice["spec"]["serveConfig"] = "typo"
    problems = crd_problems(rayservice)
    assert any("'rayStartparams' was unexpected" in p for p in problems)
    assert any("'serveConfig' was unexpected" in p for p in problems)


def test_serve_check_catches_keys_ray_would_ignore() -> None:
    text = one(render_chart(None), "RayService")["spec"]["serveConfigV2"]
    doc = yaml.safe_load(text)
    doc["applications"][0]["argz"] = {}
    doc["http_options"]["hots"] = "0.0.0.0"
    assert sorted(serve_config_problems(yaml.safe_dump(doc))) == [
        "applications[0].argz: ignored by Ray Serve",
        "http_options.hots: ignored by Ray Serve",
    ]


def test_kuberay_rules_check_names_and_upgrade_type() -> None:
    rayservice = one(render_chart(None), "RayService")
    rayservice["metadata"]["name"] = "x" * 48
    rayservice["spec"]["upgradeStrategy"]["type"] = "Rolling"
    assert len(kuberay_rule_problems(rayservice)) == 2


def test_builtin_check_catches_unknown_fields() -> None:
    pdb = one(render_chart(None), "PodDisruptionBudget")
    pdb["spec"]["maxUnavailible"] = 1
    assert builtin_problems(pdb)
