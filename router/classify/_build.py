"""``build_classifier``: the classifier a garden's config names, fitted on its exemplars."""

from __future__ import annotations

import importlib
from typing import Any, cast

from cluster.config import GardenConfig
from cluster.exceptions import ConfigError
from router.classify._cache import cache_key, cached
from router.classify._protocol import Classifier
from router.classify._training import training_set

# Classifier is re-exported: it was defined here first.
__all__ = ["Classifier", "build_classifier", "classifier_class"]

_KEY = "router.classifier.import_path"
_SOURCE = "(router.classifier)"


def classifier_class(import_path: str) -> type[Any]:
    """The class ``'module:Class'`` names; ConfigError when it cannot be imported."""
    module_name, _, attr = import_path.partition(":")
    if not module_name or not attr:
        raise ConfigError(_SOURCE, [f"{_KEY}: {import_path!r} is not 'module:Class'"])
    try:
        module = importlib.import_module(module_name)
    except ImportError as err:
        raise ConfigError(
            _SOURCE, [f"{_KEY}: cannot import module {module_name!r} of {import_path!r} ({err})"]
        ) from err
    cls = getattr(module, attr, None)
    if cls is None:
        raise ConfigError(
            _SOURCE, [f"{_KEY}: module {module_name!r} has no {attr!r} ({import_path!r})"]
        )
    if not callable(getattr(cls, "classify", None)):
        raise ConfigError(
            _SOURCE,
            [f"{_KEY}: {import_path!r} has no classify(text) method; it is not a classifier"],
        )
    return cast(type[Any], cls)


def build_classifier(garden: GardenConfig, *, cache: bool = True) -> Classifier:
    """The classifier of ``garden.router.classifier``, fitted on ``training_set(garden)``.

    Built as ``Class(texts, labels, **options)``. With ``cache`` the fitted
    object is loaded from, or stored to, ``garden.data_path()/cache/classifier``
    (see :mod:`router.classify._cache`). Raises ConfigError naming
    ``router.classifier.import_path`` when the class cannot be imported or
    offers no ``classify``; errors of the class itself (bad options) pass
    through unchanged.
    """
    spec = garden.router.classifier
    cls = classifier_class(spec.import_path)
    texts, labels = training_set(garden)

    def build() -> Classifier:
        classifier = cls(texts, labels, **spec.options)
        if not isinstance(classifier, Classifier):
            raise ConfigError(
                _SOURCE,
                [
                    f"{_KEY}: {spec.import_path!r} does not build a classifier with "
                    "domains, classify and classify_many"
                ],
            )
        return classifier

    if not cache:
        return build()
    key = cache_key(texts, labels, spec.import_path, spec.options)
    return cast(Classifier, cached(garden.data_path() / "cache" / "classifier", key, build))
