"""The classifier's training data: each model's description and exemplars."""

from __future__ import annotations

from pathlib import Path

from cluster.config import AdapterSpec, GardenConfig, ModelSpec
from cluster.exemplars import Exemplar, read_exemplars
from router.policy import GENERAL_DOMAIN

__all__ = ["CONFIG_SOURCE", "training_rows", "training_set"]

#: The source of exemplars written in the config itself (and of descriptions).
CONFIG_SOURCE = "config"


def training_rows(garden: GardenConfig) -> tuple[list[Exemplar], list[str]]:
    """Every model's and routed adapter's description, exemplars and exemplars_file, labelled.

    A specialist's (or adapter's) prompts are labelled with its first domain,
    the generalist's with ``general``. Adding a specialist is a config change.
    """
    rows: list[Exemplar] = []
    labels: list[str] = []
    for spec in garden.chat_models:
        teachers: list[tuple[str, ModelSpec | AdapterSpec]] = [
            (spec.domains[0] if spec.domains else GENERAL_DOMAIN, spec)
        ]
        teachers.extend((a.domains[0], a) for a in (spec.lora.adapters if spec.lora else []))
        for label, teacher in teachers:
            taught = _taught(teacher.exemplars, teacher.description, teacher.exemplars_file)
            rows.extend(taught)
            labels.extend([label] * len(taught))
    return rows, labels


def _taught(texts: list[str], description: str, path: str | None) -> list[Exemplar]:
    """A model's or adapter's exemplars: inline ones, its description, then its file's."""
    taught = [Exemplar(text, CONFIG_SOURCE) for text in texts]
    if description:
        taught.append(Exemplar(description, CONFIG_SOURCE))
    if path is not None:
        taught.extend(read_exemplars(Path(path).expanduser()))
    return taught


def training_set(garden: GardenConfig) -> tuple[list[str], list[str]]:
    """(texts, labels) of :func:`training_rows`, as classifiers are fitted on them."""
    rows, labels = training_rows(garden)
    return [row.text for row in rows], labels
