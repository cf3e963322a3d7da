"""Every series the Grafana dashboard queries is one that the garden's processes export.

Ray's metrics agent prefixes application metrics with ``ray_``, makes ``:``
an ``_`` (vLLM's ``vllm:*`` names), adds ``_total`` to counters and
``_bucket`` to histogram buckets. The names are read from the installed
Ray Serve and vLLM sources and from the router's own names.
"""

from __future__ import annotations

import importlib.util
import json
import re
from pathlib import Path

import pytest

from router import semconv
from tests._kube import CHART

pytestmark = pytest.mark.unit

_SERIES = re.compile(r"\bray_[a-z0-9_]+")


def _package_dir(name: str) -> Path:
    spec = importlib.util.find_spec(name)  # a top-level package: found, not imported
    assert spec is not None and spec.submodule_search_locations, name
    return Path(next(iter(spec.submodule_search_locations)))


def _literals(files: list[Path], pattern: str) -> set[str]:
    found: set[str] = set()
    for path in files:
        found |= set(re.findall(pattern, path.read_text(errors="replace")))
    return found


def _exported() -> set[str]:
    """Every series name Prometheus can see from a garden, as Ray exports it."""
    serve = _literals(
        sorted((_package_dir("ray") / "serve" / "_private").glob("*.py")), r'"(serve_[a-z_]+)"'
    )
    vllm = _literals(
        [_package_dir("vllm") / "v1" / "metrics" / "loggers.py"], r'name="(vllm:[a-z_]+)"'
    )
    base = {f"ray_{n.replace(':', '_')}" for n in serve | vllm}
    base |= {f"ray_{semconv.METRIC_ROUTE}", f"ray_{semconv.METRIC_DECISION_SECONDS}"}
    return base | {n + "_total" for n in base} | {n + "_bucket" for n in base}


def test_the_dashboard_queries_only_exported_series() -> None:
    dashboard = json.loads((CHART / "dashboards" / "garden.json").read_text())
    queried = {
        name
        for panel in dashboard["panels"]
        for target in panel.get("targets", [])
        for name in _SERIES.findall(target["expr"])
    }
    assert {
        "ray_garden_route_total",
        "ray_garden_route_decision_seconds_bucket",
        "ray_vllm_time_to_first_token_seconds_bucket",
    } <= queried
    assert sorted(queried - _exported()) == []


def test_the_check_catches_a_misspelt_series() -> None:
    assert "ray_serve_deployment_request_counter_total" in _exported()
    assert "ray_serve_deployment_request_count_total" not in _exported()
    assert "ray_vllm:kv_cache_usage_perc" not in _exported()
