"""The import contracts of pyproject.toml's ``[tool.importlinter]``, checked by import-linter.

The layering (docs/architecture.md, "Layers"): control plane, tools, runtime,
pure cores, ground floor, each importing only from below; no private module
imported from outside its package; no Ray in the pure cores. A second test
keeps the layer list whole, so that a new module cannot slip past the
contract by being in no layer.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.unit

REPO = Path(__file__).resolve().parents[2]


def test_the_import_contracts_hold() -> None:
    lint = Path(sys.executable).with_name("lint-imports")
    result = subprocess.run(
        [str(lint), "--config", str(REPO / "pyproject.toml"), "--no-cache"],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 broken" in result.stdout


def test_every_module_is_in_a_layer() -> None:
    import grimp
    from importlinter.api import read_configuration

    config = read_configuration(str(REPO / "pyproject.toml"))
    roots = config["session_options"]["root_packages"]
    (layers,) = [c for c in config["contracts_options"] if c["type"] == "layers"]
    listed = {m for layer in layers["layers"] for m in re.split(r"[|:]", layer) if m.strip()}
    listed = {m.strip() for m in listed}
    graph = grimp.build_graph(*roots, cache_dir=None)
    homeless = sorted(
        module
        for module in graph.modules
        if module not in roots
        and not any(module == m or module.startswith(m + ".") for m in listed)
    )
    assert homeless == [], f"modules in no layer of [tool.importlinter]: {homeless}"
