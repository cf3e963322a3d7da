"""The classifier interface, and building the configured one from the garden."""

from __future__ import annotations

import importlib
from collections.abc import Sequence
from typing import Protocol, runtime_checkable

from cluster.config import GardenConfig
from cluster.exceptions import ConfigError
from router.classify._training import training_set
from router.policy import Features

__all__ = ["Classifier", "build_classifier"]


@runtime_checkable
class Classifier(Protocol):
    """A domain classifier: built as ``Class(texts, labels, **options)``.

    ``domains`` lists every label it can answer (``general`` included);
    ``classify`` returns the top domain with a calibrated confidence.
    """

    domains: Sequence[str]

    def classify(self, text: str) -> Features:
        """The domain of one request's text."""
        ...

    def classify_many(self, texts: Sequence[str]) -> list[Features]:
        """:meth:`classify` for many texts at once."""
        ...


def build_classifier(garden: GardenConfig) -> Classifier:
    """The classifier named by ``router.classifier``, fitted on the garden's exemplars.

    Raises :class:`ConfigError` naming ``router.classifier.import_path`` when
    the class cannot be imported or does not satisfy :class:`Classifier`.
    """
    spec = garden.router.classifier
    module_name, _, attr = spec.import_path.partition(":")
    try:
        cls = getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError) as err:
        raise ConfigError(
            "router.classifier",
            [f"router.classifier.import_path: cannot import it ({err}) (got {spec.import_path!r})"],
        ) from err
    texts, labels = training_set(garden)
    classifier = cls(texts, labels, **spec.options)
    if not isinstance(classifier, Classifier):
        raise ConfigError(
            "router.classifier",
            [
                "router.classifier.import_path: the class does not build a classifier with "
                f"domains, classify and classify_many (got {spec.import_path!r})"
            ],
        )
    return classifier
