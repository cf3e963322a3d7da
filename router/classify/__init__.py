"""Domain classification of requests: the pluggable interface, the default cascade, its inputs.

A router replica calls :func:`build_classifier` once at start-up and then
``classifier.classify(request_text(body))`` per request.
"""

from router.classify._build import build_classifier, classifier_class
from router.classify._cascade import CascadeClassifier
from router.classify._protocol import Classifier
from router.classify._text import MAX_CHARS, clip, request_text
from router.classify._training import training_rows, training_set

__all__ = [
    "MAX_CHARS",
    "CascadeClassifier",
    "Classifier",
    "build_classifier",
    "classifier_class",
    "clip",
    "request_text",
    "training_rows",
    "training_set",
]
