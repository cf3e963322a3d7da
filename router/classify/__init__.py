"""Domain classification of requests: the default cascade and its inputs."""

from router.classify._build import Classifier, build_classifier
from router.classify._cascade import CascadeClassifier
from router.classify._text import MAX_CHARS, clip, request_text
from router.classify._training import training_set

__all__ = [
    "MAX_CHARS",
    "CascadeClassifier",
    "Classifier",
    "build_classifier",
    "clip",
    "request_text",
    "training_set",
]
