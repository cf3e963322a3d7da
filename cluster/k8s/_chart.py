"""The garden's Kubernetes objects, rendered from ``helm/model-garden`` by Helm's own library.

There is one chart. ``garden k8s render`` and ``apply`` render it through
``helm-python-sdk`` (Helm's Go library, no ``helm`` binary), exactly as
``helm template`` would with the same values: the chart's defaults, then each
``--values`` file, then the garden config (a garden.yaml is a values file).
Helm checks the values against the chart's ``values.schema.json`` and the
templates ``fail`` on cross-key problems (a worker group per accelerator,
KubeRay's name limit, ...). What Helm cannot state, the garden config's own
rules, is checked first with the same validation as ``garden up``.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml

from cluster.config import GardenConfig, parse_config
from cluster.exceptions import ConfigError

__all__ = [
    "CHART_ENV",
    "GARDEN_KEYS",
    "Rendered",
    "chart_dir",
    "render_chart",
    "stack_values",
]

#: Environment variable naming the chart directory, for an installed (non-editable) package.
CHART_ENV = "GARDEN_CHART"

#: Top-level values that are garden.yaml's own keys (the rest are cluster values).
GARDEN_KEYS = tuple(GardenConfig.model_fields)

#: Helm's schema errors, one per line: ``- at '/json/pointer': message`` (causes indented).
_SCHEMA_LINE = re.compile(r"^\s*- at '(?P<at>[^']*)': (?P<message>.*)$")
#: A template's ``fail``: ``execution error at (<template>:<line>:<col>): <message>``.
_FAIL = re.compile(r"execution error at \([^)]*\): (?P<message>.*)", re.DOTALL)


def chart_dir() -> Path:
    """The chart: ``$GARDEN_CHART``, else the repository's ``helm/model-garden``.

    Raises :class:`ConfigError` when neither is a chart directory.
    """
    configured = os.environ.get(CHART_ENV)
    path = (
        Path(configured).expanduser()
        if configured
        else Path(__file__).resolve().parents[2] / "helm" / "model-garden"
    )
    if not (path / "Chart.yaml").is_file():
        raise ConfigError(
            CHART_ENV,
            [f"{CHART_ENV}: no Helm chart at {str(path)!r}; point it at helm/model-garden"],
        )
    return path


def stack_values(*documents: Mapping[str, Any]) -> dict[str, Any]:
    """Values files as ``helm -f a -f b`` stacks them: maps merge, the later file wins.

    Helm's own ``mergeMaps`` (``pkg/cli/values``), which its SDK leaves to the
    CLI; nulls are kept, for Helm's coalescing with the chart's defaults to
    delete those keys at render time.
    """
    out: dict[str, Any] = {}
    for document in documents:
        for key, value in document.items():
            if isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
                out[key] = stack_values(out[key], value)
            else:
                out[key] = value
    return out


def _pointer_path(pointer: str) -> str:
    """``/workerGroups/0/gpus`` as the garden writes key paths: ``workerGroups[0].gpus``."""
    text = ""
    for part in [p.replace("~1", "/").replace("~0", "~") for p in pointer.split("/") if p]:
        text += f"[{part}]" if part.isdigit() else (f".{part}" if text else part)
    return text or "<root>"


def _helm_problems(err: Exception) -> list[str]:
    """Helm's message as ``key.path: problem`` lines, as every config error reads."""
    text = str(err)
    lines = [m for m in map(_SCHEMA_LINE.match, text.splitlines()) if m]
    if lines:
        return [f"{_pointer_path(m['at'])}: {m['message']}" for m in lines]
    failed = _FAIL.search(text)
    return [failed["message"].strip() if failed else text.strip()]


class Rendered:
    """What Helm rendered: each template's text, and the objects in it."""

    def __init__(self, manifests: Mapping[str, str]) -> None:
        #: Template path to rendered text, NOTES.txt left out, in path order.
        self.manifests = {
            path: text
            for path, text in sorted(manifests.items())
            if not path.endswith("NOTES.txt") and text.strip()
        }

    @property
    def objects(self) -> list[dict[str, Any]]:
        """Every Kubernetes object, in template path order."""
        return [
            doc
            for text in self.manifests.values()
            for doc in yaml.safe_load_all(text)
            if isinstance(doc, dict)
        ]

    def one(self, kind: str) -> dict[str, Any]:
        """The single object of ``kind`` (ValueError when there is not exactly one)."""
        found = [o for o in self.objects if o.get("kind") == kind]
        if len(found) != 1:
            raise ValueError(f"{len(found)} objects of kind {kind} rendered")
        return found[0]

    def text(self) -> str:
        """The manifests as ``helm template`` prints them."""
        return "".join(
            f"---\n# Source: {path}\n{text.strip(chr(10))}\n"
            for path, text in self.manifests.items()
        )


def render_chart(
    garden: Mapping[str, Any],
    values: Sequence[Mapping[str, Any]] = (),
    *,
    release: str,
    namespace: str,
    source: str = "<values>",
) -> Rendered:
    """The chart rendered for ``garden`` (a garden.yaml mapping) over the ``values`` files.

    Raises :class:`ConfigError` naming the key path of each problem: the
    garden config's own rules first (as ``garden up`` would), then the
    chart's schema and its templates' checks (as ``helm install`` would).
    """
    import helm_python

    merged = stack_values(*values, garden)
    parse_config({k: merged[k] for k in GARDEN_KEYS if k in merged}, source=source)
    try:
        with helm_python.Chart.load(chart_dir()) as chart:
            manifests = chart.render(merged, name=release, namespace=namespace, is_install=True)
    except (helm_python.HelmValuesError, helm_python.HelmRenderError) as err:
        raise ConfigError(source, _helm_problems(err)) from err
    return Rendered(manifests)
