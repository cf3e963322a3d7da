"""The lexical stage alone, fitted on the default garden's exemplars."""

from __future__ import annotations

import pytest

from cluster.config import load_config
from router.classify import CascadeClassifier, training_set

pytestmark = pytest.mark.unit


@pytest.fixture(scope="module")
def lexical() -> CascadeClassifier:
    texts, labels = training_set(load_config(None))
    return CascadeClassifier(texts, labels, semantic=False)


def test_training_set_covers_every_domain_with_many_exemplars() -> None:
    _, labels = training_set(load_config(None))
    for domain in ("medicine", "law", "finance", "code", "general"):
        assert labels.count(domain) >= 60, domain


@pytest.mark.parametrize(
    ("text", "domain"),
    [
        ("What is the recommended dose of amoxicillin for a child with otitis media?", "medicine"),
        ("Is a promise without consideration an enforceable contract?", "law"),
        ("How does a rise in interest rates affect bond prices?", "finance"),
        ("Why does my Python list comprehension raise an IndexError?", "code"),
    ],
)
def test_obvious_prompts_get_their_domain(
    lexical: CascadeClassifier, text: str, domain: str
) -> None:
    features = lexical.classify(text)
    assert features.domain == domain, features.scores
    assert 0.0 <= features.confidence <= 1.0
    assert features.stage == "lexical"
    assert sum(features.scores.values()) == pytest.approx(1.0, abs=1e-3)


def test_batch_and_single_agree(lexical: CascadeClassifier) -> None:
    texts = ["What is a tort?", "Sort a dict by value in Python"]
    assert lexical.classify_many(texts) == [lexical.classify(t) for t in texts]
