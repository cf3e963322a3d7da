"""Offline checks of Kubernetes objects: Helm's own rendering, and every schema that applies.

No cluster is needed: the chart renders through Helm's library
(``helm-python-sdk``), built-in objects validate against Kubernetes' OpenAPI
schemas (``kubernetes-validate``), the RayService against KubeRay's CRD (read
in place from ``../shared``), and ``serveConfigV2`` against Ray Serve's own
``ServeDeploySchema``.
"""

from __future__ import annotations

import functools
import os
import re
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[1]
CHART = REPO / "helm" / "model-garden"
CI_VALUES = sorted((CHART / "ci").glob("*.yaml"))
CRD = Path(
    os.environ.get(
        "GARDEN_KUBERAY_CRD", REPO.parent / "shared" / "kuberay" / "ray.io_rayservices.yaml"
    )
)
#: The Kubernetes version built-in objects are validated for.
KUBE_VERSION = "1.30.0"
#: What KubeRay's operator accepts as spec.upgradeStrategy.type (its CRD says only "string").
UPGRADE_TYPES = {"NewCluster", "NewClusterWithIncrementalUpgrade", "None"}
_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")


def load_values(path: Path) -> dict[str, Any]:
    """A values file as Helm reads it (YAML anchors and merge keys resolved)."""
    import helm_python

    return dict(helm_python.values_from_yaml(path.read_text()))


def render_chart(
    values: dict[str, Any] | None = None, *, release: str = "garden", namespace: str = "ml"
) -> list[dict[str, Any]]:
    """Every object ``helm template`` would produce (NOTES.txt left out)."""
    import helm_python

    with helm_python.Chart.load(CHART) as chart:
        rendered = chart.render(values, name=release, namespace=namespace, is_install=True)
    objects = []
    for path, text in sorted(rendered.items()):
        if path.endswith("NOTES.txt"):
            continue
        objects += [doc for doc in yaml.safe_load_all(text) if doc]
    return objects


def one(objects: list[dict[str, Any]], kind: str) -> dict[str, Any]:
    """The single object of ``kind``."""
    found = [o for o in objects if o["kind"] == kind]
    assert len(found) == 1, f"{len(found)} objects of kind {kind}"
    return found[0]


def _close(node: Any) -> None:
    """Make unknown fields errors wherever the CRD lists the fields and keeps no unknown ones."""
    if isinstance(node, dict):
        if (
            "properties" in node
            and "additionalProperties" not in node
            and not node.get("x-kubernetes-preserve-unknown-fields")
        ):
            node["additionalProperties"] = False
        for value in node.values():
            _close(value)
    elif isinstance(node, list):
        for value in node:
            _close(value)


@functools.cache
def _rayservice_validator() -> Any:
    from jsonschema import Draft7Validator

    crd = yaml.safe_load(CRD.read_text())
    version = next(v for v in crd["spec"]["versions"] if v["name"] == "v1")
    schema = version["schema"]["openAPIV3Schema"]
    # The API server would prune unknown fields and KubeRay would never see them:
    # a silently dropped setting, so here it is an error.
    _close(schema)
    return Draft7Validator(schema)


def crd_problems(rayservice: dict[str, Any]) -> list[str]:
    """Violations of KubeRay's RayService v1 schema, unknown fields included."""
    errors = _rayservice_validator().iter_errors(rayservice)
    return [f"{'.'.join(map(str, e.absolute_path)) or '<root>'}: {e.message}" for e in errors]


def _dropped(given: Any, kept: Any, path: str) -> list[str]:
    if isinstance(given, dict) and isinstance(kept, dict):
        out = []
        for key, value in given.items():
            where = f"{path}.{key}" if path else str(key)
            out += [where] if key not in kept else _dropped(value, kept[key], where)
        return out
    if isinstance(given, list) and isinstance(kept, list):
        return [
            p
            for i, (g, k) in enumerate(zip(given, kept, strict=True))
            for p in _dropped(g, k, f"{path}[{i}]")
        ]
    return []


def serve_config_problems(text: str) -> list[str]:
    """Parse serveConfigV2 with Ray's ServeDeploySchema; name every key it would ignore."""
    from ray.serve.schema import ServeDeploySchema

    doc = yaml.safe_load(text)
    parsed = ServeDeploySchema.model_validate(doc)
    kept = parsed.model_dump(exclude_unset=True)
    return [f"{p}: ignored by Ray Serve" for p in _dropped(doc, kept, "")]


def kuberay_rule_problems(rayservice: dict[str, Any]) -> list[str]:
    """KubeRay's own rules that its CRD does not state."""
    name = rayservice["metadata"]["name"]
    problems = []
    if len(name) > 47:
        problems.append(f"name {name!r} is longer than 47 characters")
    if not _DNS_LABEL.match(name):
        problems.append(f"name {name!r} is not a DNS label")
    kind = (rayservice["spec"].get("upgradeStrategy") or {}).get("type")
    if kind is not None and kind not in UPGRADE_TYPES:
        problems.append(f"upgradeStrategy.type {kind!r} is not one of {sorted(UPGRADE_TYPES)}")
    for group in rayservice["spec"]["rayClusterConfig"].get("workerGroupSpecs", []):
        if not _DNS_LABEL.match(group["groupName"]):
            problems.append(f"groupName {group['groupName']!r} is not a DNS label")
    return problems


def builtin_problems(obj: dict[str, Any]) -> list[str]:
    """Violations of Kubernetes' own schema (unknown fields included) for a built-in object."""
    import kubernetes_validate

    try:
        kubernetes_validate.validate(obj, KUBE_VERSION, strict=True)
    except kubernetes_validate.ValidationError as err:
        return [f"{obj['kind']} {'.'.join(map(str, err.path))}: {err.message}"]
    return []


def pod_templates(rayservice: dict[str, Any]) -> list[dict[str, Any]]:
    """The head's and each worker group's pod template, as built-in PodTemplate objects."""
    config = rayservice["spec"]["rayClusterConfig"]
    templates = [config["headGroupSpec"]["template"]]
    templates += [g["template"] for g in config.get("workerGroupSpecs", [])]
    return [
        {"apiVersion": "v1", "kind": "PodTemplate", "metadata": {"name": f"t{i}"}, "template": t}
        for i, t in enumerate(templates)
    ]
