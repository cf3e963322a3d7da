"""The Dockerfile agrees with pyproject.toml and the chart, and copies files that exist.

These machines reach no image registry, so the image is never built here;
what can drift without a build is checked instead.
"""

from __future__ import annotations

import os
import re
import subprocess
import tomllib
from pathlib import Path

import pytest
import yaml

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "helm" / "model-garden"


def _instructions() -> list[tuple[str, str]]:
    """(instruction, arguments) of each Dockerfile line, continuations joined."""
    text = re.sub(r"\\\n", " ", (ROOT / "Dockerfile").read_text())
    out = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            word, _, rest = line.partition(" ")
            out.append((word.upper(), rest.strip()))
    return out


def _args() -> dict[str, str]:
    return dict(rest.split("=", 1) for word, rest in _instructions() if word == "ARG")


def _project() -> dict[str, object]:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]


def test_the_base_image_is_rays_llm_image_at_the_pinned_ray() -> None:
    project = _project()
    extras = project["optional-dependencies"]  # type: ignore[index]
    pins = {
        m.group(1) for r in extras["gpu"] + extras["cpu"] if (m := re.match(r"ray\[.*\]==(.+)", r))
    }
    assert pins == {_args()["RAY_VERSION"]}
    chart = yaml.safe_load((CHART / "values.yaml").read_text())
    assert chart["rayVersion"] == _args()["RAY_VERSION"]
    (base,) = [rest for word, rest in _instructions() if word == "FROM"]
    assert base == "rayproject/ray-llm:${BASE_TAG}"
    tag = _args()["BASE_TAG"].replace("${RAY_VERSION}", _args()["RAY_VERSION"])
    python = re.search(r"-py3(\d+)-", tag)
    assert python, tag
    # The base image's Python is one the package allows.
    low, high = re.findall(r"3\.(\d+)", str(project["requires-python"]))
    assert int(low) <= int(python.group(1)) < int(high)


def test_it_installs_the_gpu_extra_from_files_that_exist() -> None:
    copies = [rest.split() for word, rest in _instructions() if word == "COPY"]
    sources = [s for args in copies for s in args[:-1] if not s.startswith("--")]
    assert sources and all((ROOT / s).exists() for s in sources), sources
    # Every package the wheel is built from is copied.
    found = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    packages = {p.rstrip("*") for p in found["packages"]["find"]["include"]}
    assert packages <= set(sources)
    (run,) = [rest for word, rest in _instructions() if word == "RUN"]
    assert 'pip install --no-cache-dir ".[gpu]"' in run
    assert "gpu" in _project()["optional-dependencies"]  # type: ignore[operator]
    ignored = (ROOT / ".dockerignore").read_text().split()
    assert not set(sources) & set(ignored)


def test_make_image_builds_the_charts_default_image() -> None:
    # Not make's own "Entering directory" lines when this runs under `make test`.
    env = {k: v for k, v in os.environ.items() if k not in ("MAKEFLAGS", "MAKELEVEL", "MFLAGS")}
    dry = subprocess.run(
        ["make", "--no-print-directory", "-n", "image"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
        env=env,
    ).stdout.strip()
    chart = yaml.safe_load((CHART / "Chart.yaml").read_text())
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    default = f"{values['image']['repository']}:{values['image']['tag'] or chart['appVersion']}"
    assert dry == f"docker build -t {default} ."
    assert chart["appVersion"] == _project()["version"]
