"""route-eval's metrics on hand-made decisions."""

from __future__ import annotations

import pytest

from router.evaluation import route_cost, route_metrics
from router.policy import Decision, Reason

pytestmark = pytest.mark.unit

OWNERS = {"law": "law", "code": "code"}


def _d(model: str) -> Decision:
    return Decision(model, "x", 0.9, Reason.SPECIALIST)


def test_metrics_count_wrong_specialists_and_coverage() -> None:
    labels = ["law", "law", "code", "general", "general"]
    decisions = [_d("law"), _d("generalist"), _d("law"), _d("generalist"), _d("code")]
    m = route_metrics(labels, decisions, OWNERS, [1.0, 2.0, 3.0, 4.0, 100.0])
    assert m["n"] == 5
    assert m["accuracy"] == pytest.approx(2 / 5)
    assert m["wrong_specialist_rate"] == pytest.approx(2 / 5)  # code→law, general→code
    assert m["specialist_coverage"] == pytest.approx(1 / 3)
    assert m["confusion"]["code"]["law"] == 1
    assert m["per_domain"]["law"] == {"precision": 0.5, "recall": 0.5, "n": 2}
    assert m["macro_recall"] == pytest.approx((0.5 + 0.0 + 0.5) / 3)
    assert m["p50_ms"] == 3.0 and m["p99_ms"] == 100.0


def test_length_mismatch_is_an_error() -> None:
    with pytest.raises(ValueError, match="2 labels but 1 decisions"):
        route_metrics(["law", "code"], [_d("law")], OWNERS, [1.0])


def test_cost_against_the_generalist_and_the_oracle() -> None:
    labels = ["law", "law", "general", "code"]
    decisions = [_d("law"), _d("generalist"), _d("generalist"), _d("law")]
    prices = {"law": 1.0, "code": 1.0, "generalist": 4.0}
    c = route_cost(labels, decisions, OWNERS, "generalist", lambda m, i: prices[m] * (i + 1))
    # rows weigh 1, 2, 3, 4: routed 1 + 8 + 12 + 4, oracle 1 + 2 + 12 + 4, generalist 40.
    assert c["routed_per_1k"] == pytest.approx(25 * 250)
    assert c["oracle_per_1k"] == pytest.approx(19 * 250)
    assert c["generalist_per_1k"] == pytest.approx(40 * 250)
    assert c["savings"] == pytest.approx(40 / 25) and c["ceiling"] == pytest.approx(40 / 19)
    assert c["share_of_ceiling"] == pytest.approx(19 / 25)
    assert c["share_of_saving"] == pytest.approx(15 / 21)


def test_cost_view_of_the_embedded_garden_prices_every_chat_model() -> None:
    # The embedded garden has an embedder with no service profile; the cost
    # view prices only the models that requests can be routed to.
    from cluster.cli._options import load
    from cluster.cli._route import _request_cost

    garden = load(None)
    assert garden.embedders, "the embedded garden is expected to serve an embedder"
    cost = _request_cost(garden, 256)
    for model in garden.chat_models:
        assert cost(model.name, "What is a tort?") > 0
