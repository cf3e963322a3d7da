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
    """Every model's and routed adapter's description, exemplars and exemplars_file, labelled.

    A specialist's (or adapter's) prompts are labelled with its first domain,
    the generalist's with ``general``. Adding a specialist is a config change.
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
        for adapter in spec.lora.adapters if spec.lora else []:
            taught = [Exemplar(text, CONFIG_SOURCE) for text in adapter.exemplars]
            if adapter.description:
                taught.append(Exemplar(adapter.description, CONFIG_SOURCE))
            if adapter.exemplars_file is not None:
                taught.extend(read_exemplars(Path(adapter.exemplars_file).expanduser()))
            rows.extend(taught)
            labels.extend([adapter.domains[0]] * len(taught))
    return rows, labels


def training_set(garden: GardenConfig) -> tuple[list[str], list[str]]:
    """(texts, labels) of :func:`training_rows`, as classifiers are fitted on them."""
    rows, labels = training_rows(garden)
    return [row.text for row in rows], labels
