"""What the router needs of a classifier, whichever class the config names."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, runtime_checkable

from router.policy import Features

__all__ = ["Classifier"]


@runtime_checkable
class Classifier(Protocol):
    """A fitted domain classifier.

    Built once per router replica by :func:`~router.classify.build_classifier`
    as ``Class(texts, labels, **options)`` from the garden's exemplars, then
    called per request. ``classify`` must be cheap and thread-compatible for
    sequential calls, and return ``Features`` whose ``domain`` is one of
    ``domains`` (``general`` included) and whose ``confidence`` is a
    calibrated probability in [0, 1].
    """

    @property
    def domains(self) -> Sequence[str]:
        """Every label the classifier can answer, ``general`` included."""
        ...

    def classify(self, text: str) -> Features:
        """The domain of one request's text (already extracted by ``request_text``)."""
        ...

    def classify_many(self, texts: Sequence[str]) -> list[Features]:
        """``classify`` of each text; the same results, possibly batched."""
        ...
