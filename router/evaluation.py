"""Routing quality metrics, as ``garden route-eval`` reports them (pure)."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from router.policy import GENERAL_DOMAIN, Decision

__all__ = ["route_cost", "route_metrics"]


def _percentile(values: Sequence[float], q: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return 0.0
    k = min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))
    return ordered[k]


def route_metrics(
    labels: Sequence[str],
    decisions: Sequence[Decision],
    owners: Mapping[str, str],
    latencies_ms: Sequence[float],
    *,
    stages: Sequence[str] = (),
) -> dict[str, Any]:
    """Accuracy and safety of routing ``labels`` (domains, or ``general``).

    A row is right when it reaches the model that owns its label (the
    generalist for ``general``). ``wrong_specialist_rate`` is the share of all
    rows sent to a specialist that does not own their label;
    ``specialist_coverage`` the share of specialist-labelled rows that reach
    their own specialist. With ``stages`` (the classifier stage that decided
    each row), ``stage_share`` gives each stage's share of the rows and
    ``stage_accuracy`` the accuracy of the rows each stage decided.
    """
    if len(labels) != len(decisions):
        raise ValueError(f"{len(labels)} labels but {len(decisions)} decisions")
    model_domain = {m: d for d, m in owners.items()}
    domains = sorted({*owners, GENERAL_DOMAIN})
    routed = [model_domain.get(d.model, GENERAL_DOMAIN) for d in decisions]
    confusion = {t: dict.fromkeys(domains, 0) for t in domains}
    for truth, got in zip(labels, routed, strict=True):
        confusion.setdefault(truth, dict.fromkeys(domains, 0))[got] += 1
    per_domain = {}
    for d in domains:
        tp = confusion.get(d, {}).get(d, 0)
        predicted = sum(row.get(d, 0) for row in confusion.values())
        actual = sum(confusion.get(d, {}).values())
        per_domain[d] = {
            "precision": tp / predicted if predicted else 0.0,
            "recall": tp / actual if actual else 0.0,
            "n": actual,
        }
    n = len(labels)
    correct = sum(t == g for t, g in zip(labels, routed, strict=True))
    wrong_specialist = sum(
        g != GENERAL_DOMAIN and g != t for t, g in zip(labels, routed, strict=True)
    )
    special = [(t, g) for t, g in zip(labels, routed, strict=True) if t in owners]
    present = [d for d in domains if per_domain[d]["n"]]
    return {
        "n": n,
        "accuracy": correct / n if n else 0.0,
        "macro_recall": sum(per_domain[d]["recall"] for d in present) / len(present)
        if present
        else 0.0,
        "wrong_specialist_rate": wrong_specialist / n if n else 0.0,
        "specialist_coverage": sum(t == g for t, g in special) / len(special) if special else 0.0,
        "per_domain": per_domain,
        "confusion": confusion,
        "p50_ms": _percentile(latencies_ms, 0.50),
        "p99_ms": _percentile(latencies_ms, 0.99),
        "stage_share": {s: stages.count(s) / len(stages) for s in sorted(set(stages))},
        "stage_accuracy": _stage_accuracy(stages, labels, routed),
    }


def _stage_accuracy(
    stages: Sequence[str], labels: Sequence[str], routed: Sequence[str]
) -> dict[str, float]:
    if not stages:
        return {}
    if len(stages) != len(labels):
        raise ValueError(f"{len(labels)} labels but {len(stages)} stages")
    out = {}
    for stage in sorted(set(stages)):
        rows = [t == g for s, t, g in zip(stages, labels, routed, strict=True) if s == stage]
        out[stage] = sum(rows) / len(rows)
    return out


def route_cost(
    labels: Sequence[str],
    decisions: Sequence[Decision],
    owners: Mapping[str, str],
    generalist: str,
    cost_of: Callable[[str, int], float],
) -> dict[str, float]:
    """What routing the rows costs per 1,000 requests, against the generalist and an oracle.

    ``cost_of(model, row)`` is the cost of serving row ``row`` on ``model``.
    ``oracle`` sends every row to the model that owns its label (the
    generalist for ``general``): the ceiling of any router on this mix.
    ``savings`` and ``ceiling`` are the all-generalist cost over the routed
    and oracle costs (how many times cheaper), ``share_of_ceiling`` the one
    over the other, and ``share_of_saving`` the part of the oracle's cost
    saving that routing achieves.
    """
    if len(labels) != len(decisions):
        raise ValueError(f"{len(labels)} labels but {len(decisions)} decisions")
    n = len(labels)
    if not n:
        return {}
    per_1k = 1000 / n
    routed = sum(cost_of(d.model, i) for i, d in enumerate(decisions)) * per_1k
    everything = sum(cost_of(generalist, i) for i in range(n)) * per_1k
    oracle = sum(cost_of(owners.get(t, generalist), i) for i, t in enumerate(labels)) * per_1k
    saved, possible = everything - routed, everything - oracle
    return {
        "routed_per_1k": routed,
        "generalist_per_1k": everything,
        "oracle_per_1k": oracle,
        "savings": everything / routed if routed else 0.0,
        "ceiling": everything / oracle if oracle else 0.0,
        "share_of_ceiling": (oracle / routed) if routed else 0.0,
        "share_of_saving": saved / possible if possible else 1.0,
    }
