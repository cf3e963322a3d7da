"""Loading ``garden.yaml``: YAML parsing, validation with key-path errors, paths."""

from __future__ import annotations

import os
from collections.abc import Mapping
from importlib import resources
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from cluster.config._schema import GardenConfig
from cluster.exceptions import ConfigError, DataFileError
from cluster.exemplars import read_exemplars

__all__ = [
    "DEFAULT_CONFIG_NAME",
    "default_config_text",
    "load_config",
    "parse_config",
    "read_yaml_file",
]

DEFAULT_CONFIG_NAME = "<embedded default>"


def _format_loc(loc: tuple[int | str, ...]) -> str:
    path = ""
    for part in loc:
        if isinstance(part, int):
            path += f"[{part}]"
        else:
            path += f".{part}" if path else part
    return path or "<root>"


def _problems(err: ValidationError) -> list[str]:
    """One ``key.path: message (got value)`` line per pydantic error."""
    lines = []
    for e in err.errors(include_url=False):
        # Drop the union/validator tags pydantic puts into locations.
        loc = tuple(p for p in e["loc"] if not (isinstance(p, str) and p.startswith("function-")))
        msg = e["msg"].removeprefix("Value error, ")
        shown = "" if e["type"] == "missing" else f" (got {_short(e.get('input'))})"
        if e["type"] == "extra_forbidden":
            shown = ""
            msg = "unknown key"
        lines.append(f"{_format_loc(loc)}: {msg}{shown}")
    return lines


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def parse_config(
    data: Mapping[str, Any], *, source: str = "<dict>", base_dir: Path | None = None
) -> GardenConfig:
    """Validate a parsed config mapping; raise :class:`ConfigError` with key paths.

    Relative model ``source`` paths are resolved against ``base_dir``.
    """
    if not isinstance(data, Mapping):
        raise ConfigError(source, [f"<root>: expected a mapping (got {_short(data)})"])
    # Top-level ``x-*`` keys hold YAML anchors for reuse (as in Compose files).
    body = {k: v for k, v in data.items() if not (isinstance(k, str) and k.startswith("x-"))}
    try:
        cfg = GardenConfig.model_validate(body)
    except ValidationError as err:
        raise ConfigError(source, _problems(err)) from err
    if base_dir is not None:
        cfg = _resolve_sources(cfg, base_dir, source)
    return cfg


def _exemplars_file(ex: str | None, base_dir: Path, source: str, key: str) -> str | None:
    """``ex`` resolved (relative to the config file, else a bundled set) and checked."""
    if ex is None:
        return None
    if not Path(ex).expanduser().is_absolute():
        local, bundled = base_dir / ex, _defaults_dir() / ex
        renamed = bundled.with_suffix(".jsonl")
        if bundled.suffix == ".txt" and not bundled.exists() and renamed.exists():
            bundled = renamed  # the bundled sets were exemplars/<domain>.txt until issue 13
        ex = str((local if local.exists() or not bundled.exists() else bundled).resolve())
    if not Path(ex).expanduser().is_file():
        raise ConfigError(source, [f"{key}: no such file (got {ex!r})"])
    try:
        read_exemplars(Path(ex).expanduser())
    except DataFileError as err:
        raise ConfigError(source, [f"{key}: {err}"]) from err
    except (OSError, UnicodeDecodeError) as err:
        raise ConfigError(source, [f"{key}: cannot read {ex!r} as UTF-8 text ({err})"]) from err
    return ex


def _resolve_sources(cfg: GardenConfig, base_dir: Path, source: str) -> GardenConfig:
    models = []
    for i, m in enumerate(cfg.models):
        src = m.source
        if src is not None and src.startswith(("./", "../")):
            src = str((base_dir / src).resolve())
        key = f"models[{i}].exemplars_file"
        update: dict[str, Any] = {
            "source": src,
            "exemplars_file": _exemplars_file(m.exemplars_file, base_dir, source, key),
        }
        if m.lora is not None and m.lora.adapters:
            adapters = [
                a.model_copy(
                    update={
                        "exemplars_file": _exemplars_file(
                            a.exemplars_file,
                            base_dir,
                            source,
                            f"models[{i}].lora.adapters[{j}].exemplars_file",
                        )
                    }
                )
                for j, a in enumerate(m.lora.adapters)
            ]
            update["lora"] = m.lora.model_copy(update={"adapters": adapters})
        models.append(m.model_copy(update=update))
    return cfg.model_copy(update={"models": models})


def _defaults_dir() -> Path:
    return Path(str(resources.files("cluster") / "defaults"))


def default_config_text() -> str:
    """The embedded default ``garden.yaml`` shipped inside the package."""
    return (resources.files("cluster") / "defaults" / "garden.yaml").read_text(encoding="utf-8")


def _parse_yaml(text: str, source: str) -> Any:
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else "<file>"
        raise ConfigError(source, [f"{where}: not valid YAML ({err})"]) from err
    return data if data is not None else {}


def read_yaml_file(path: str | os.PathLike[str]) -> Any:
    """The parsed YAML of ``path`` (``{}`` when empty), unvalidated; ConfigError if unreadable."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as err:
        raise ConfigError(str(p), [f"<file>: cannot read ({err.strerror})"]) from err
    return _parse_yaml(text, str(p))


def load_config(path: str | os.PathLike[str] | None = None) -> GardenConfig:
    """Load and validate ``path``, or the embedded default when ``path`` is None."""
    if path is None:
        source, base = DEFAULT_CONFIG_NAME, _defaults_dir()
        data = _parse_yaml(default_config_text(), source)
    else:
        data = read_yaml_file(path)
        source, base = str(path), Path(path).resolve().parent
    return parse_config(data, source=source, base_dir=base)
