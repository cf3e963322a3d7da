"""The RayService's default name, as the chart's ``model-garden.fullname`` helper makes it.

``garden k8s status``, ``wait`` and ``delete`` take a release name and no
values, so they name the object without rendering the chart; a unit test
checks this against Helm's rendering.
"""

from __future__ import annotations

__all__ = ["CHART_NAME", "fullname"]

#: The chart's name (``Chart.yaml``).
CHART_NAME = "model-garden"


def fullname(release: str) -> str:
    """The RayService of ``release`` with no name overrides: ``<release>-model-garden``.

    A release whose name already contains the chart's is used as is; both
    are cut to 63 characters with one trailing dash dropped, as Helm's
    ``trunc 63 | trimSuffix "-"``.
    """
    name = release if CHART_NAME in release else f"{release}-{CHART_NAME}"
    return name[:63].removesuffix("-")
