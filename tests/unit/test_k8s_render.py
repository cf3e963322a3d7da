"""`garden k8s render` is the chart, rendered by Helm's library from the same garden.yaml.

The chart is rendered by Helm's library with a values file; `garden k8s
render` gets the same file split in two: its garden keys as `--config`, the
rest as `--values`. Both must give the same objects, and the CLI prints them
as `helm template` does. The chart's values.schema.json, Chart.yaml and
README are kept in step with the config here too.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner

from cluster.cli._main import cli
from cluster.config import default_config_text
from cluster.exceptions import ConfigError
from cluster.k8s import GARDEN_KEYS, fullname, render_chart, schema_text, stack_values
from tests._kube import CHART, CI_VALUES, load_values, one, pod_templates
from tests._kube import render_chart as helm_template

pytestmark = pytest.mark.unit


def _split(values: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    garden = {k: v for k, v in values.items() if k in GARDEN_KEYS or k.startswith("x-")}
    return garden, {k: v for k, v in values.items() if k not in garden}


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


def _cli_render(tmp_path: Path, garden: dict[str, Any], *values: dict[str, Any], args=()) -> Any:
    from cluster.cli import _k8s  # noqa: F401

    (tmp_path / "garden.yaml").write_text(yaml.safe_dump(garden))
    flags = ["--config", str(tmp_path / "garden.yaml")]
    for i, doc in enumerate(values):
        (tmp_path / f"values-{i}.yaml").write_text(yaml.safe_dump(doc))
        flags += ["--values", str(tmp_path / f"values-{i}.yaml")]
    return CliRunner().invoke(cli, ["k8s", "render", *flags, *args])


@pytest.mark.parametrize("case", sorted(CASES))
@pytest.mark.parametrize(("release", "namespace"), [("garden", "ml"), ("model-garden", "default")])
def test_cli_render_is_helm_template(
    tmp_path: Path, case: str, release: str, namespace: str
) -> None:
    """Split into --config and --values, the CLI renders every object the chart does."""
    values = CASES[case]
    garden, cluster = _split(values)
    result = _cli_render(tmp_path, garden, cluster, args=["--release", release, "-n", namespace])
    assert result.exit_code == 0, result.output
    ours = [doc for doc in yaml.safe_load_all(result.stdout) if doc]
    assert ours == helm_template(values, release=release, namespace=namespace)
    assert result.stdout.startswith("---\n# Source: model-garden/templates/")
    assert "serveConfigV2: |" in result.stdout  # readable, not one escaped line


@pytest.mark.parametrize(("case", "flag"), [("defaults", "1"), ("proxy-ingress", "0")])
def test_every_pod_starts_ray_in_the_routers_ingress_mode(case: str, flag: str) -> None:
    rayservice = one(helm_template(CASES[case], release="g", namespace="ml"), "RayService")
    pods = pod_templates(rayservice)
    assert len(pods) >= 2  # the head and at least one worker group
    for pod in pods:
        (container,) = pod["template"]["spec"]["containers"]
        env = {e["name"]: e["value"] for e in container["env"]}
        assert env["RAY_SERVE_THROUGHPUT_OPTIMIZED"] == flag
        assert env["RAY_SERVE_ENABLE_HA_PROXY"] == flag


def test_values_files_stack_as_helm_stacks_them() -> None:
    """Later files win key by key; a null survives the stacking and deletes at render."""
    assert stack_values({"a": {"x": 1, "y": 2}, "b": 1}, {"a": {"y": 3}, "b": None}) == {
        "a": {"x": 1, "y": 3},
        "b": None,
    }
    garden, cluster = _split(CASES["garden-yaml"])
    rendered = render_chart(
        garden,
        [cluster, {"head": {"rayStartParams": {"num-cpus": None}}}],
        release="g",
        namespace="ml",
    )
    head = rendered.one("RayService")["spec"]["rayClusterConfig"]["headGroupSpec"]
    assert "num-cpus" not in head["rayStartParams"]  # the chart's default, deleted by Helm
    assert "dashboard-host" in head["rayStartParams"]


def test_garden_config_reaches_serve_unchanged() -> None:
    values = CASES["garden-yaml"]
    garden, cluster = _split(values)
    ours = render_chart(garden, [cluster], release="g", namespace="ml").one("RayService")
    app = yaml.safe_load(ours["spec"]["serveConfigV2"])["applications"][0]
    assert app["args"]["config"] == {
        k: garden.get(k, {})
        for k in GARDEN_KEYS
        if k in garden or k in ("router", "autoscaling", "budget", "telemetry")
    }
    assert app["args"]["base_dir"] == "/home/ray/garden/exemplars"


@pytest.mark.parametrize("release", ["garden", "model-garden", "my-model-garden-2", "x" * 70])
def test_default_rayservice_name_is_the_charts(release: str) -> None:
    garden, cluster = _split(CASES["garden-yaml"])
    if len(fullname(release)) > 47:  # the chart refuses it: KubeRay's limit
        with pytest.raises(ConfigError, match="KubeRay allows at most 47"):
            render_chart(garden, [cluster], release=release, namespace="ml")
        return
    rendered = render_chart(garden, [cluster], release=release, namespace="ml")
    assert rendered.one("RayService")["metadata"]["name"] == fullname(release)


def test_a_missing_chart_is_a_clear_error(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("GARDEN_CHART", str(tmp_path))
    garden, cluster = _split(CASES["garden-yaml"])
    with pytest.raises(ConfigError, match="GARDEN_CHART: no Helm chart at"):
        render_chart(garden, [cluster], release="g", namespace="ml")


@pytest.mark.parametrize(
    ("values", "config_patch", "expected"),
    [
        (
            {"workerGroups": [{"name": "a", "maxReplicas": 2, "gpus": "1"}]},
            {},
            "workerGroups[0].gpus: got string, want integer",
        ),
        (
            {"workerGroups": [{"name": "a", "maxReplicas": 2, "minReplicas": -1}]},
            {},
            "workerGroups[0].minReplicas: minimum: got -1, want 0",
        ),
        ({"bogus": True}, {}, "<root>: additional properties 'bogus' not allowed"),
        ({}, {"router": {"prot": 1}}, "router.prot: unknown key"),
        (
            {},
            {
                "models": [
                    {"name": "g", "role": "generalist", "source": "x", "resources": {"gpus": "x"}}
                ]
            },
            "models[0].resources.gpus: Input should be a valid number",
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
            'models[0].resources.accelerator_type: no worker group has acceleratorType "H100"',
        ),
        (
            {},
            {"router": {"auth": {"api_keys_env": "GARDEN_API_KEYS"}}},
            'router.auth.api_keys_env: "GARDEN_API_KEYS" must come from the Secret named by '
            "apiKeys.existingSecret",
        ),
        (
            {},
            {"router": {"auth": {"api_keys_env": "1X"}}},
            "router.auth.api_keys_env: String should match pattern",
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
    garden = {**_split(CASES["cpu-values"])[0], **config_patch}
    result = _cli_render(tmp_path, garden, values)
    assert result.exit_code == 2, result.output
    assert expected in result.output


def test_tiny_models_get_a_warning(tmp_path: Path) -> None:
    garden = yaml.safe_load(default_config_text())
    result = _cli_render(tmp_path, garden, {"workerGroups": [{"name": "cpu", "maxReplicas": 2}]})
    assert result.exit_code == 0, result.output
    assert "warning: models[0] (medicine) is a tiny model" in result.output


# -- the chart's files follow the config ----------------------------------------------


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
    values = _split(load_values(CHART / "values.yaml"))[1]
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


def test_cli_render_defaults_to_the_embedded_garden(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without --config, render deploys what `garden up` runs: the embedded garden."""
    from cluster.cli import _k8s  # noqa: F401

    monkeypatch.delenv("GARDEN_CONFIG", raising=False)
    result = CliRunner().invoke(cli, ["k8s", "render", "--release", "garden"])
    assert result.exit_code == 0, result.output
    garden = yaml.safe_load(default_config_text())
    ours = [doc for doc in yaml.safe_load_all(result.stdout) if doc]
    assert ours == helm_template(stack_values(garden), release="garden", namespace="default")
    # Each tiny model is named: on a cluster it needs a `source`.
    assert result.stderr.count("is a tiny model") == len(garden["models"])
