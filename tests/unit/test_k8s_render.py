"""`garden k8s render` builds the RayService the chart builds, from the same garden.yaml.

The chart is rendered by Helm's library with a values file; `garden k8s
render` gets the same file split in two: its garden keys as `--config`, the
rest as `--values`. Both must produce the same object (only the labels that
name Helm differ). The chart's values.yaml, values.schema.json, Chart.yaml and
README are kept in step with the Python side here too.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner

from cluster.cli._main import cli
from cluster.config import default_config_text
from cluster.k8s import GARDEN_KEYS, ChartValues, render_rayservice, schema_text
from tests._kube import CHART, CI_VALUES, load_values, one, pod_templates, render_chart

pytestmark = pytest.mark.unit

#: Labels only Helm sets (the chart's version and `managed-by: Helm`).
HELM_ONLY_LABELS = ("helm.sh/chart", "app.kubernetes.io/managed-by")


def _split(values: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    garden = {k: v for k, v in values.items() if k in GARDEN_KEYS or k.startswith("x-")}
    return garden, {k: v for k, v in values.items() if k not in garden}


def _comparable(rayservice: dict[str, Any]) -> dict[str, Any]:
    obj = json.loads(json.dumps(rayservice))
    for label in HELM_ONLY_LABELS:
        obj["metadata"]["labels"].pop(label, None)
    obj["spec"]["serveConfigV2"] = yaml.safe_load(obj["spec"]["serveConfigV2"])
    return dict(obj)


def _garden_yaml_case() -> dict[str, Any]:
    values = dict(yaml.safe_load(default_config_text()))
    values["workerGroups"] = [{"name": "cpu", "maxReplicas": 4}]
    return values


def _proxy_ingress_case() -> dict[str, Any]:
    values = _garden_yaml_case()
    values["router"] = {**values.get("router", {}), "ingress": "proxy"}
    return values


CASES = {
    "defaults": load_values(CHART / "values.yaml"),
    **{p.stem: load_values(p) for p in CI_VALUES},
    "garden-yaml": _garden_yaml_case(),
    "proxy-ingress": _proxy_ingress_case(),
}


@pytest.mark.parametrize("case", sorted(CASES))
@pytest.mark.parametrize(("release", "namespace"), [("garden", "ml"), ("model-garden", "default")])
def test_render_agrees_with_the_chart(case: str, release: str, namespace: str) -> None:
    values = CASES[case]
    chart = one(render_chart(values, release=release, namespace=namespace), "RayService")
    garden, cluster = _split(values)
    ours = render_rayservice(garden, cluster, release=release, namespace=namespace)
    assert _comparable(ours) == _comparable(chart)


@pytest.mark.parametrize(("case", "flag"), [("defaults", "1"), ("proxy-ingress", "0")])
def test_every_pod_starts_ray_in_the_routers_ingress_mode(case: str, flag: str) -> None:
    rayservice = one(render_chart(CASES[case], release="g", namespace="ml"), "RayService")
    pods = pod_templates(rayservice)
    assert len(pods) >= 2  # the head and at least one worker group
    for pod in pods:
        (container,) = pod["template"]["spec"]["containers"]
        env = {e["name"]: e["value"] for e in container["env"]}
        assert env["RAY_SERVE_THROUGHPUT_OPTIMIZED"] == flag
        assert env["RAY_SERVE_ENABLE_HA_PROXY"] == flag


def test_cli_render_agrees_with_the_chart(tmp_path: Path) -> None:
    from cluster.cli import _k8s  # noqa: F401

    values = CASES["gpu-full-values"]
    garden, cluster = _split(values)
    (tmp_path / "garden.yaml").write_text(yaml.safe_dump(garden))
    (tmp_path / "cluster.yaml").write_text(yaml.safe_dump(cluster))
    result = CliRunner().invoke(
        cli,
        [
            "k8s",
            "render",
            "--config",
            str(tmp_path / "garden.yaml"),
            "--values",
            str(tmp_path / "cluster.yaml"),
            "--release",
            "prod",
            "-n",
            "serving",
        ],
    )
    assert result.exit_code == 0, result.output
    ours = yaml.safe_load(result.output)
    chart = one(render_chart(values, release="prod", namespace="serving"), "RayService")
    assert _comparable(ours) == _comparable(chart)
    assert "serveConfigV2: |" in result.output  # readable, not one escaped line


def test_garden_config_reaches_serve_unchanged() -> None:
    values = CASES["garden-yaml"]
    garden, _ = _split(values)
    ours = render_rayservice(
        garden, {"workerGroups": values["workerGroups"]}, release="g", namespace="ml"
    )
    app = yaml.safe_load(ours["spec"]["serveConfigV2"])["applications"][0]
    expected = {
        k: garden.get(k, {})
        for k in GARDEN_KEYS
        if k in garden or k in ("router", "autoscaling", "budget", "telemetry")
    }
    assert app["args"] == {"config": expected, "base_dir": "/home/ray/garden/exemplars"}


@pytest.mark.parametrize(
    ("values", "config_patch", "expected"),
    [
        (
            {"workerGroups": [{"name": "a", "maxReplicas": 2, "gpus": "1"}]},
            {},
            "workerGroups[0].gpus: '1' is not of type 'integer'",
        ),
        (
            {"workerGroups": [{"name": "a", "maxReplicas": 2, "minReplicas": -1}]},
            {},
            "workerGroups[0].minReplicas: -1 is less than the minimum of 0",
        ),
        ({"bogus": True}, {}, "<root>: unknown key 'bogus'"),
        ({}, {"router": {"prot": 1}}, "router: unknown key 'prot'"),
        (
            {},
            {
                "models": [
                    {"name": "g", "role": "generalist", "source": "x", "resources": {"gpus": "1"}}
                ]
            },
            "models[0].resources.gpus: '1' is not of type 'number'",
        ),
        (
            {},
            {
                "models": [
                    {
                        "name": "g",
                        "role": "generalist",
                        "source": "x",
                        "autoscaling": {"min_replicas": 0},
                    }
                ]
            },
            "cannot scale to zero (autoscaling.min_replicas=0)",
        ),
        ({"fullnameOverride": "x" * 48}, {}, "KubeRay allows at most 47"),
        (
            {},
            {
                "models": [
                    {
                        "name": "g",
                        "role": "generalist",
                        "source": "x",
                        "resources": {"gpus": 1, "accelerator_type": "H100"},
                    }
                ]
            },
            "models[0].resources.accelerator_type: no worker group has acceleratorType 'H100'",
        ),
        (
            {},
            {"router": {"auth": {"api_keys_env": "GARDEN_API_KEYS"}}},
            "router.auth.api_keys_env: 'GARDEN_API_KEYS' must come from the Secret named by "
            "apiKeys.existingSecret",
        ),
        (
            {},
            {"router": {"auth": {"api_keys_env": "1X"}}},
            "router.auth.api_keys_env: '1X' does not match",
        ),
    ],
    ids=[
        "gpu-string",
        "negative-replicas",
        "unknown-key",
        "unknown-garden-key",
        "model-gpus-string",
        "garden-rule",
        "name-too-long",
        "no-accelerator-group",
        "api-keys-without-secret",
        "api-keys-env-name",
    ],
)
def test_cli_render_rejects_bad_values_with_the_key_path(
    tmp_path: Path, values: dict[str, Any], config_patch: dict[str, Any], expected: str
) -> None:
    from cluster.cli import _k8s  # noqa: F401

    garden = {**_split(CASES["cpu-values"])[0], **config_patch}
    (tmp_path / "garden.yaml").write_text(yaml.safe_dump(garden))
    (tmp_path / "values.yaml").write_text(yaml.safe_dump(values))
    result = CliRunner().invoke(
        cli,
        [
            "k8s",
            "render",
            "--config",
            str(tmp_path / "garden.yaml"),
            "--values",
            str(tmp_path / "values.yaml"),
        ],
    )
    assert result.exit_code == 2, result.output
    assert expected in result.output


def test_tiny_models_get_a_warning(tmp_path: Path) -> None:
    from cluster.cli import _k8s  # noqa: F401

    (tmp_path / "garden.yaml").write_text(default_config_text())
    (tmp_path / "values.yaml").write_text("workerGroups: [{name: cpu, maxReplicas: 2}]\n")
    result = CliRunner().invoke(
        cli,
        [
            "k8s",
            "render",
            "--config",
            str(tmp_path / "garden.yaml"),
            "--values",
            str(tmp_path / "values.yaml"),
        ],
    )
    assert result.exit_code == 0, result.output
    assert "warning: models[0] (medicine) is a tiny model" in result.output


# -- the chart's files follow the Python side -----------------------------------


def test_values_yaml_defaults_are_the_python_defaults() -> None:
    values = load_values(CHART / "values.yaml")
    garden, cluster = _split(values)
    assert cluster == ChartValues().dump()
    assert {k: garden[k] for k in ("router", "autoscaling", "budget", "telemetry")} == {
        "router": {},
        "autoscaling": {},
        "budget": {},
        "telemetry": {},
    }


def test_values_schema_is_generated() -> None:
    assert (CHART / "values.schema.json").read_text() == schema_text(), (
        "regenerate: garden k8s schema > helm/model-garden/values.schema.json"
    )


def test_chart_versions_follow_the_package() -> None:
    from importlib.metadata import version

    chart = yaml.safe_load((CHART / "Chart.yaml").read_text())
    assert chart["version"] == chart["appVersion"] == version("model-garden")


#: Maps documented as one value (their keys are the user's or Kubernetes').
_WHOLE = ("resources", "rayStartParams", "files", "labels")


def _leaf_paths(node: Any, prefix: str) -> list[str]:
    if isinstance(node, dict) and node and not prefix.endswith(_WHOLE):
        return [
            p for k, v in node.items() for p in _leaf_paths(v, f"{prefix}.{k}" if prefix else k)
        ]
    return [prefix]


def test_chart_readme_documents_every_value() -> None:
    readme = (CHART / "README.md").read_text()
    values = ChartValues().dump()
    values["workerGroups"] = values["workerGroups"][0]
    paths = [p.replace("workerGroups.", "workerGroups[].") for p in _leaf_paths(values, "")]
    paths += ["workerGroups[].replicas", "upgradeStrategy.clusterUpgradeOptions", *GARDEN_KEYS]
    missing = [p for p in paths if f"`{p}`" not in readme]
    assert missing == []


def test_garden_app_reads_relative_exemplars_under_base_dir(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import cluster.app

    built: list[Any] = []
    monkeypatch.setattr(cluster.app, "build_app", built.append)
    (tmp_path / "tax.txt").write_text("How is a gain taxed?\n")
    config = yaml.safe_load(default_config_text())
    config["models"][1]["exemplars_file"] = "tax.txt"
    cluster.app.garden_app({"config": config, "base_dir": str(tmp_path)})
    (garden,) = built
    assert garden.models[1].exemplars_file == str(tmp_path / "tax.txt")
    bundled = Path(garden.models[0].exemplars_file)
    assert bundled.is_file() and bundled.name == "medicine.jsonl"
