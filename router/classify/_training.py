"""The classifier's training data: each model's description and exemplars."""

from __future__ import annotations

from pathlib import Path

from cluster.config import GardenConfig
from router.policy import GENERAL_DOMAIN

__all__ = ["training_set"]


def training_set(garden: GardenConfig) -> tuple[list[str], list[str]]:
    """(texts, labels) from every model's description, exemplars and exemplars_file.

    A specialist's prompts are labelled with its first domain, the
    generalist's with ``general``. Adding a specialist is a config change.
    """
    texts: list[str] = []
    labels: list[str] = []
    for spec in garden.models:
        label = spec.domains[0] if spec.domains else GENERAL_DOMAIN
        prompts = list(spec.exemplars)
        if spec.description:
            prompts.append(spec.description)
        if spec.exemplars_file is not None:
            lines = Path(spec.exemplars_file).expanduser().read_text(encoding="utf-8").splitlines()
            prompts.extend(line.strip() for line in lines if line.strip())
        texts.extend(prompts)
        labels.extend([label] * len(prompts))
    return texts, labels
