"""The cascade's semantic stage (MiniLM under torch) and the cached, pickled classifier."""

from __future__ import annotations

import copy
import io
import pickle

import joblib
import pytest

from cluster.config import load_config
from router.classify import CascadeClassifier, build_classifier

pytestmark = pytest.mark.integration

TEXTS = [
    "What is the mechanism of action of metformin?",
    "Is a promise without consideration enforceable?",
    "Explain how a bond's duration relates to its price sensitivity.",
    "Why does my recursive function hit the maximum recursion depth?",
    "Who painted the ceiling of the Sistine Chapel?",
    "x" * 3000,  # clipped, then cut to the encoder's max_tokens
]


@pytest.fixture(scope="module")
def cascade() -> CascadeClassifier:
    classifier = build_classifier(load_config(None))
    assert isinstance(classifier, CascadeClassifier)
    return classifier


@pytest.fixture(scope="module")
def always_semantic(cascade: CascadeClassifier) -> CascadeClassifier:
    forced = copy.copy(cascade)
    forced.accept = 1.0 + 1e-9  # no lexical answer is ever confident enough
    return forced


def test_semantic_stage_answers_with_calibrated_distributions(
    always_semantic: CascadeClassifier,
) -> None:
    results = always_semantic.classify_many(TEXTS)
    assert [f.stage for f in results] == ["semantic"] * len(TEXTS)
    assert [f.domain for f in results[:5]] == ["medicine", "law", "finance", "code", "general"]
    for f in results:
        assert 0.0 <= f.confidence <= 1.0
        assert sum(f.scores.values()) == pytest.approx(1.0, abs=1e-3)


def test_batch_and_single_agree_through_the_semantic_stage(
    always_semantic: CascadeClassifier,
) -> None:
    assert always_semantic.classify_many(TEXTS) == [always_semantic.classify(t) for t in TEXTS]


def test_pickle_leaves_the_encoder_out_and_reloads_it(cascade: CascadeClassifier) -> None:
    state = cascade.__getstate__()
    assert not {"_tokenizer", "_table", "_encoder"} & state.keys()
    assert len(pickle.dumps(cascade)) < 20_000_000  # no 47 MB token table, no MiniLM weights
    buffer = io.BytesIO()
    joblib.dump(cascade, buffer)
    buffer.seek(0)
    loaded = joblib.load(buffer)
    assert loaded.classify_many(TEXTS) == cascade.classify_many(TEXTS)


def test_plain_torch_bert_matches_transformers() -> None:
    torch = pytest.importorskip("torch")
    transformers = pytest.importorskip("transformers")
    from router.classify._bert import BertEncoder
    from router.classify._minilm import load_tokenizer, model_path, tokenize

    reference = transformers.BertModel.from_pretrained(
        str(model_path()), add_pooling_layer=False
    ).eval()
    ours = BertEncoder(model_path(), layers=6).eval()
    (ids,) = tokenize(load_tokenizer(), ["Explain how a bond's duration relates to its price."])
    tokens = torch.tensor([101, *ids.tolist(), 102])
    with torch.inference_mode():
        expected = reference(input_ids=tokens[None]).last_hidden_state[0]
        assert torch.allclose(ours(tokens), expected, atol=1e-4)
