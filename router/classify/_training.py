"""The classifier's training data: each model's description and exemplars."""

from __future__ import annotations

from pathlib import Path

from cluster.config import GardenConfig
from cluster.exemplars import Exemplar, read_exemplars
from router.policy import GENERAL_DOMAIN

__all__ = ["CONFIG_SOURCE", "training_rows", "training_set"]

#: The source of exemplars written in the config itself (and of descriptions).
CONFIG_SOURCE = "config"


def training_rows(garden: GardenConfig) -> tuple[list[Exemplar], list[str]]:
    """Every model's description, exemplars and exemplars_file, with their labels.

    A specialist's prompts are labelled with its first domain, the
    generalist's with ``general``. Adding a specialist is a config change.
    """
    rows: list[Exemplar] = []
    labels: list[str] = []
    for spec in garden.models:
        label = spec.domains[0] if spec.domains else GENERAL_DOMAIN
        own = [Exemplar(text, CONFIG_SOURCE) for text in spec.exemplars]
        if spec.description:
            own.append(Exemplar(spec.description, CONFIG_SOURCE))
        if spec.exemplars_file is not None:
            own.extend(read_exemplars(Path(spec.exemplars_file).expanduser()))
        rows.extend(own)
        labels.extend([label] * len(own))
    return rows, labels


def training_set(garden: GardenConfig) -> tuple[list[str], list[str]]:
    """(texts, labels) of :func:`training_rows`, as classifiers are fitted on them."""
    rows, labels = training_rows(garden)
    return [row.text for row in rows], labels
