"""route_metrics' per-stage view: which classifier stage decided, and how well."""

from __future__ import annotations

import pytest

from router.evaluation import route_metrics
from router.policy import Decision, Reason

pytestmark = pytest.mark.unit


def _d(model: str) -> Decision:
    return Decision(model, "x", 0.9, Reason.SPECIALIST)


def test_stage_share_and_accuracy() -> None:
    labels = ["law", "law", "general", "general"]
    decisions = [_d("law"), _d("generalist"), _d("generalist"), _d("law")]
    stages = ["lexical", "semantic", "lexical", "semantic"]
    m = route_metrics(labels, decisions, {"law": "law"}, [1.0] * 4, stages=stages)
    assert m["stage_share"] == {"lexical": 0.5, "semantic": 0.5}
    assert m["stage_accuracy"] == {"lexical": 1.0, "semantic": 0.0}


def test_without_stages_the_stage_views_are_empty() -> None:
    m = route_metrics(["law"], [_d("law")], {"law": "law"}, [1.0])
    assert m["stage_share"] == {} and m["stage_accuracy"] == {}
