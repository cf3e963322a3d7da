"""Names and labels of the garden's objects, as the chart's ``_helpers.tpl`` makes them.

Each function mirrors one helper; ``garden k8s render`` must name and label
the RayService exactly as ``helm template`` does (a unit test compares them).
"""

from __future__ import annotations

import re
from importlib.metadata import version
from typing import Any

__all__ = [
    "CHART_NAME",
    "MAX_RAYSERVICE_NAME",
    "app_version",
    "chart_labels",
    "fullname",
    "rayservice_name_problems",
    "selector_labels",
]

#: The chart's name (``Chart.yaml``).
CHART_NAME = "model-garden"

#: KubeRay rejects longer RayService names: it derives RayCluster, Service and
#: pod names from it, which must stay within Kubernetes' 63 characters.
MAX_RAYSERVICE_NAME = 47

_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")


def app_version() -> str:
    """The chart's appVersion: the model-garden version the image carries."""
    return version("model-garden")


def _trunc63(text: str) -> str:
    # Helm's `trunc 63 | trimSuffix "-"`: one trailing dash goes, not all.
    return text[:63].removesuffix("-")


def name(values: dict[str, Any]) -> str:
    """``model-garden.name``: the chart name or ``nameOverride``."""
    return _trunc63(values.get("nameOverride") or CHART_NAME)


def fullname(values: dict[str, Any], release: str) -> str:
    """``model-garden.fullname``: the RayService's name and every other object's prefix."""
    if values.get("fullnameOverride"):
        return _trunc63(values["fullnameOverride"])
    base = values.get("nameOverride") or CHART_NAME  # untruncated, as the helper uses it
    return _trunc63(release if base in release else f"{release}-{base}")


def selector_labels(values: dict[str, Any], release: str) -> dict[str, str]:
    """``model-garden.selectorLabels``: what Services and the PDB select pods by."""
    return {"app.kubernetes.io/name": name(values), "app.kubernetes.io/instance": release}


def chart_labels(values: dict[str, Any], release: str) -> dict[str, str]:
    """``model-garden.labels`` less ``helm.sh/chart`` and ``managed-by``, which name Helm."""
    return {
        **selector_labels(values, release),
        "app.kubernetes.io/version": app_version(),
        "app.kubernetes.io/part-of": CHART_NAME,
    }


def rayservice_name_problems(rayservice: str) -> list[str]:
    """KubeRay's rules for a RayService name: a DNS label of at most 47 characters."""
    problems = []
    if len(rayservice) > MAX_RAYSERVICE_NAME:
        problems.append(
            f"fullnameOverride: the RayService name {rayservice!r} has {len(rayservice)} "
            f"characters; KubeRay allows at most {MAX_RAYSERVICE_NAME} (set fullnameOverride "
            "or use a shorter release name)"
        )
    if not _DNS_LABEL.match(rayservice):
        problems.append(
            f"fullnameOverride: the RayService name {rayservice!r} is not a DNS label "
            "(lowercase letters, digits and '-', starting and ending alphanumeric)"
        )
    return problems
