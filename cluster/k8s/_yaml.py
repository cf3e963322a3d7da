"""YAML output of manifests: no anchors, multi-line strings as literal blocks."""

from __future__ import annotations

from typing import Any

import yaml

__all__ = ["dump_yaml"]


class _Dumper(yaml.SafeDumper):
    """SafeDumper that repeats shared objects (garden.yaml's anchors) instead of aliasing."""

    def ignore_aliases(self, data: Any) -> bool:
        return True


def _str(dumper: yaml.SafeDumper, text: str) -> yaml.ScalarNode:
    # serveConfigV2 reads as YAML in a block rather than as one escaped line.
    style = "|" if "\n" in text else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", text, style=style)


_Dumper.add_representer(str, _str)


def dump_yaml(obj: Any) -> str:
    """``obj`` as block YAML, keys in insertion order, with no ``&anchors``."""
    return yaml.dump(obj, Dumper=_Dumper, sort_keys=False, allow_unicode=True)
