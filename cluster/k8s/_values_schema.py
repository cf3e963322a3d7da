"""The chart's ``values.schema.json``: the cluster values as the chart states them, and the config.

The cluster values (image, head, workerGroups, ...) are the chart's own and
are written in the file. The garden keys (models, router, ...) are generated
from :class:`~cluster.config.GardenConfig` by ``garden k8s schema``, so that
Helm rejects exactly the unknown keys and bad types that ``garden`` rejects;
a unit test keeps that part current. Draft-07 with ``definitions``, which
both of Helm's JSON Schema validators (Helm 3's and Helm 4's) understand.
"""

from __future__ import annotations

import json
from typing import Any

from cluster.config import GardenConfig
from cluster.k8s._chart import GARDEN_KEYS, chart_dir

__all__ = ["schema_text", "values_schema"]

_REF = "#/definitions/{model}"


def _closed(node: Any) -> None:
    """Close every map whose keys are only constrained by pattern (pydantic leaves it open)."""
    if isinstance(node, dict):
        if "patternProperties" in node and "additionalProperties" not in node:
            node["additionalProperties"] = False
        for value in node.values():
            _closed(value)
    elif isinstance(node, list):
        for value in node:
            _closed(value)


def _refs(node: Any) -> set[str]:
    """Names of the definitions ``node`` refers to, directly."""
    if isinstance(node, dict):
        own = {node["$ref"].rsplit("/", 1)[-1]} if isinstance(node.get("$ref"), str) else set()
        return own.union(*(_refs(v) for v in node.values()))
    if isinstance(node, list):
        return set().union(*(_refs(v) for v in node))
    return set()


def _reachable(roots: Any, definitions: dict[str, Any]) -> list[str]:
    """Definitions reachable from ``roots``, in ``definitions``' order."""
    seen: set[str] = set()
    todo = _refs(roots)
    while todo:
        name = todo.pop()
        if name in seen or name not in definitions:
            continue
        seen.add(name)
        todo |= _refs(definitions[name])
    return [name for name in definitions if name in seen]


def values_schema() -> dict[str, Any]:
    """The chart's schema with its garden keys generated from the config now."""
    committed = json.loads((chart_dir() / "values.schema.json").read_text(encoding="utf-8"))
    definitions = committed.get("definitions", {})
    cluster = {k: v for k, v in committed["properties"].items() if k not in GARDEN_KEYS}
    garden = GardenConfig.model_json_schema(ref_template=_REF)
    garden_defs = garden.get("$defs", {})
    cluster_defs = {n: definitions[n] for n in _reachable(cluster, definitions)}
    clash = cluster_defs.keys() & garden_defs.keys()
    if clash:
        raise ValueError(f"schema definitions defined twice: {sorted(clash)}")
    garden_part = {"properties": garden["properties"], "definitions": garden_defs}
    _closed(garden_part)
    return {
        **committed,
        "properties": {**cluster, **garden_part["properties"]},
        "definitions": {**cluster_defs, **garden_part["definitions"]},
    }


def schema_text() -> str:
    """``values.schema.json`` as it should be committed: indented, with a final newline."""
    return json.dumps(values_schema(), indent=2) + "\n"
