"""``summary.json`` of a load test, computed from its per-request records.

The records are the locustfile's JSON lines (:class:`loadtest.stream.RequestRecord`
as dicts), plus ``{"kind": "start"|"stop", "t": epoch}`` marks of the test's
wall-clock window. Percentiles are exact over the records (linear
interpolation between closest ranks), not Locust's bucketed ones.

* latency percentiles (``ttft_ms``, ``tpot_ms``, ``e2e_ms``): p50/p90/p99,
  and ``ttft_ms_by_turn`` (a multi-turn test's turns, "1" the first),
  mean and count over successful requests;
* throughput: successful requests and output tokens per second of the window;
* failures: count, share, and counts per error text;
* goodput: successful requests within the SLO of the model that served them
  (``ttft_ms <= slo.ttft_ms`` and, with two or more tokens,
  ``tpot_ms <= slo.tpot_ms``), as a share of all requests and per second;
  a model without a known SLO never counts as good;
* routing: count and share of requests per served model, per route reason
  (``explicit`` when the response had no ``x-garden-reason``, as for a
  model named explicitly), and per prompt domain, which model served it.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cluster.jsonl import read_jsonl

__all__ = ["SLO", "percentile", "read_records", "summarize"]

#: The reason recorded for a response without ``x-garden-reason``.
NO_REASON = "explicit"


@dataclass(frozen=True, slots=True)
class SLO:
    """A model's latency objectives, in milliseconds."""

    ttft_ms: float
    tpot_ms: float


def percentile(values: Sequence[float], q: float) -> float:
    """The ``q``-th percentile (0..100) with linear interpolation; ValueError if empty."""
    if not values:
        raise ValueError("percentile of no values")
    if not 0 <= q <= 100:
        raise ValueError(f"percentile {q} is outside 0..100")
    ordered = sorted(values)
    rank = (len(ordered) - 1) * q / 100
    low = math.floor(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def read_records(path: Path) -> list[dict[str, Any]]:
    """The JSON lines of ``path``; a torn last line (a killed writer) is skipped."""
    if not path.exists():
        return []
    return [row for row in read_jsonl(path, skip_invalid=True) if isinstance(row, dict)]


def _latency(values: list[float]) -> dict[str, float | int | None]:
    if not values:
        return {"count": 0, "p50": None, "p90": None, "p99": None, "mean": None}
    return {
        "count": len(values),
        "p50": round(percentile(values, 50), 2),
        "p90": round(percentile(values, 90), 2),
        "p99": round(percentile(values, 99), 2),
        "mean": round(sum(values) / len(values), 2),
    }


def _shares(counts: Counter[str], total: int) -> dict[str, dict[str, float | int]]:
    return {
        key: {"count": n, "share": round(n / total, 4) if total else 0.0}
        for key, n in counts.most_common()
    }


def _window_s(marks: list[dict[str, Any]], requests: list[dict[str, Any]]) -> float:
    starts = [m["t"] for m in marks if m.get("kind") == "start"]
    stops = [m["t"] for m in marks if m.get("kind") == "stop"]
    if starts and stops and max(stops) > min(starts):
        return float(max(stops) - min(starts))
    ends = [r["start"] + (r.get("e2e_ms") or 0) / 1000 for r in requests]
    return float(max(ends) - min(r["start"] for r in requests)) if requests else 0.0


def _good(row: Mapping[str, Any], slos: Mapping[str, SLO]) -> bool:
    slo = slos.get(row.get("model") or "")
    if not row.get("ok") or slo is None or row.get("ttft_ms") is None:
        return False
    tpot = row.get("tpot_ms")
    return bool(row["ttft_ms"] <= slo.ttft_ms and (tpot is None or tpot <= slo.tpot_ms))


def summarize(rows: Iterable[Mapping[str, Any]], slos: Mapping[str, SLO]) -> dict[str, Any]:
    """The summary of a test's records (see the module's docstring); JSON-ready."""
    data = [dict(r) for r in rows]
    marks = [r for r in data if "kind" in r]
    requests = [r for r in data if "kind" not in r]
    ok = [r for r in requests if r.get("ok")]
    failed = [r for r in requests if not r.get("ok")]
    window = _window_s(marks, requests)
    tokens = sum(int(r.get("output_tokens") or 0) for r in ok)
    good = sum(1 for r in requests if _good(r, slos))
    total = len(requests)
    per_second = (lambda n: round(n / window, 3)) if window > 0 else (lambda n: 0.0)
    served = [r for r in requests if r.get("model")]
    by_turn: dict[str, list[float]] = {}
    for r in ok:  # a multi-turn test's later turns carry the earlier ones: cacheable prefixes
        if r.get("ttft_ms") is not None:
            by_turn.setdefault(str(r.get("turn") or 1), []).append(r["ttft_ms"])
    by_prompt: dict[str, Counter[str]] = {}
    for r in served:
        by_prompt.setdefault(r.get("prompt_domain") or "unknown", Counter())[r["model"]] += 1
    return {
        "requests": total,
        "duration_s": round(window, 3),
        "ttft_ms": _latency([r["ttft_ms"] for r in ok if r.get("ttft_ms") is not None]),
        "ttft_ms_by_turn": {t: _latency(by_turn[t]) for t in sorted(by_turn, key=int)},
        "tpot_ms": _latency([r["tpot_ms"] for r in ok if r.get("tpot_ms") is not None]),
        "e2e_ms": _latency([r["e2e_ms"] for r in ok if r.get("e2e_ms") is not None]),
        "throughput": {
            "requests_per_s": per_second(len(ok)),
            "output_tokens_per_s": per_second(tokens),
            "output_tokens": tokens,
        },
        "failures": {
            "count": len(failed),
            "share": round(len(failed) / total, 4) if total else 0.0,
            "errors": dict(Counter(str(r.get("error")) for r in failed).most_common()),
        },
        "goodput": {
            "requests": good,
            "share": round(good / total, 4) if total else 0.0,
            "requests_per_s": per_second(good),
            "slo": {name: {"ttft_ms": s.ttft_ms, "tpot_ms": s.tpot_ms} for name, s in slos.items()},
        },
        "routing": {
            "model": _shares(Counter(r["model"] for r in served), len(served)),
            "reason": _shares(Counter(r.get("reason") or NO_REASON for r in served), len(served)),
            "fallback_from": dict(
                Counter(r["fallback_from"] for r in served if r.get("fallback_from"))
            ),
            "by_prompt_domain": {d: dict(c.most_common()) for d, c in sorted(by_prompt.items())},
        },
    }
