"""The garden's routing decision as one call: classify the text, then ``decide``."""

from __future__ import annotations

from collections.abc import Mapping

from cluster.config import GardenConfig
from router.classify import Classifier, build_classifier
from router.policy import Decision, Features, ModelState, PolicyConfig, decide

__all__ = ["Router", "policy_config"]


def policy_config(garden: GardenConfig) -> PolicyConfig:
    """The ``auto`` policy of ``garden``: domain owners and thresholds from the config."""
    owners = garden.domain_owners()
    return PolicyConfig(
        generalist=garden.generalist.name,
        owners=owners,
        default_threshold=garden.router.default_threshold,
        thresholds=dict(garden.router.thresholds),
    )


class Router:
    """The classifier ``garden.router.classifier`` names, plus the garden's dispatch policy.

    The classifier comes from :func:`~router.classify.build_classifier`
    (cached on disk unless ``cache`` is false); options such as the
    cascade's ``semantic: false`` go in ``router.classifier.options``.
    """

    def __init__(self, garden: GardenConfig, *, cache: bool = True) -> None:
        self.classifier: Classifier = build_classifier(garden, cache=cache)
        self.policy = policy_config(garden)

    def route(self, text: str, states: Mapping[str, ModelState]) -> tuple[Features, Decision]:
        """Classify ``text`` and decide where it goes given the models' ``states``."""
        features = self.classifier.classify(text)
        return features, decide(features, states, self.policy)
