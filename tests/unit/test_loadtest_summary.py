"""summary.json maths (loadtest/summary.py), load shapes, the prompt mix and durations."""

from __future__ import annotations

import random
import statistics
from collections import Counter
from typing import Any

import pytest

from loadtest.prompts import DOMAINS, PROMPTS, PromptMix, parse_weights
from loadtest.run import parse_duration
from loadtest.shapes import BurstSchedule, pacing_wait
from loadtest.summary import SLO, percentile, summarize

pytestmark = pytest.mark.unit


def test_percentile_interpolates_like_the_inclusive_method() -> None:
    values = [float(v) for v in random.Random(3).sample(range(1000), 37)]
    cuts = statistics.quantiles(values, n=100, method="inclusive")
    for q in (1, 10, 50, 90, 99):
        assert percentile(values, q) == pytest.approx(cuts[q - 1])
    assert percentile([5.0], 99) == 5.0
    assert percentile([1.0, 2.0], 0) == 1.0 and percentile([1.0, 2.0], 100) == 2.0
    with pytest.raises(ValueError):
        percentile([], 50)


def _row(
    model: str, ttft: float, tpot: float | None, ok: bool = True, **extra: Any
) -> dict[str, Any]:
    row = {"start": 100.0, "ok": ok, "status": 200, "model": model, "reason": "specialist",
           "ttft_ms": ttft, "tpot_ms": tpot, "e2e_ms": ttft + 500, "output_tokens": 10}  # fmt: skip
    row.update(extra)
    return row


def test_summary_goodput_uses_the_slo_of_the_model_that_served() -> None:
    slos = {"law": SLO(1000, 100), "generalist": SLO(1500, 150)}
    rows = [
        {"kind": "start", "t": 100.0},
        _row("law", 900, 90, prompt_domain="law"),  # good
        _row("law", 1200, 90, prompt_domain="law"),  # late first token
        _row("generalist", 1200, 120, reason="low_confidence", prompt_domain="law"),  # good there
        _row("generalist", 1400, 160, reason=None, prompt_domain="general"),  # slow tokens
        _row("law", 100, None, prompt_domain="law"),  # one token: TTFT alone decides
        _row("other", 10, 10, prompt_domain="law"),  # no SLO known: never good
        _row("law", 10, 10, ok=False, error="HTTP 503", prompt_domain="law"),
        {"kind": "stop", "t": 110.0},
    ]
    s = summarize(rows, slos)
    assert s["requests"] == 7 and s["duration_s"] == 10
    assert s["goodput"]["requests"] == 3
    assert s["goodput"]["share"] == pytest.approx(3 / 7, abs=1e-4)
    assert s["goodput"]["requests_per_s"] == pytest.approx(0.3)
    assert s["failures"] == {"count": 1, "share": pytest.approx(1 / 7, abs=1e-4),
                             "errors": {"HTTP 503": 1}}  # fmt: skip
    assert s["throughput"]["requests_per_s"] == pytest.approx(0.6)
    assert s["throughput"]["output_tokens_per_s"] == pytest.approx(6.0)
    assert s["ttft_ms"]["count"] == 6 and s["tpot_ms"]["count"] == 5  # failures excluded
    assert s["ttft_ms"]["p50"] == pytest.approx(percentile([900, 1200, 1200, 1400, 100, 10], 50))
    routing = s["routing"]
    assert routing["model"]["law"] == {"count": 4, "share": pytest.approx(4 / 7, abs=1e-4)}
    assert routing["reason"]["explicit"]["count"] == 1  # no x-garden-reason header
    assert routing["by_prompt_domain"]["law"] == {"law": 4, "generalist": 1, "other": 1}


def test_summary_without_marks_uses_the_requests_span_and_handles_nothing() -> None:
    rows = [_row("law", 100, 10, start=10.0, e2e_ms=1000), _row("law", 100, 10, start=12.0)]
    assert summarize(rows, {})["duration_s"] == pytest.approx(2.6)  # 12 + 0.6 - 10
    empty = summarize([], {})
    assert empty["requests"] == 0 and empty["ttft_ms"]["p50"] is None
    assert empty["throughput"]["requests_per_s"] == 0.0


def test_burst_schedule_alternates_and_ends() -> None:
    shape = BurstSchedule(users=6, burst_s=10, idle_s=5, duration_s=40)
    assert [shape.users_at(t) for t in (0, 9.9, 10, 14.9, 15, 29, 30, 39.9, 40)] == [
        6, 6, 0, 0, 6, 0, 6, 6, None,
    ]  # fmt: skip
    assert BurstSchedule(2, 1, 0).users_at(1e6) == 2
    with pytest.raises(ValueError):
        BurstSchedule(0, 1, 1)


def test_pacing_spreads_the_rate_over_users() -> None:
    assert pacing_wait(4, 2.0, None, 5.0) == 0  # a first request starts at once
    assert pacing_wait(4, 2.0, 5.0, 5.5) == pytest.approx(1.5)  # every 4 / 2 = 2 s
    assert pacing_wait(4, 2.0, 5.0, 8.0) == 0  # a slow request: the next starts at once
    assert pacing_wait(4, 0.0, 5.0, 5.1) == 0  # no rate: back to back


def test_prompt_weights_and_mix() -> None:
    assert parse_weights("") == dict.fromkeys(DOMAINS, 1.0)
    assert parse_weights("law=2, code=1") == {**dict.fromkeys(DOMAINS, 0.0), "law": 2, "code": 1}
    for bad in ("poetry=1", "law", "law=x", "law=-1", "law=0"):
        with pytest.raises(ValueError):
            parse_weights(bad)
    rng = random.Random(0)
    drawn = Counter(PromptMix.parse("law=3,code=1").pick(rng) for _ in range(400))
    domains = Counter()
    for (domain, prompt), n in drawn.items():
        assert prompt in PROMPTS[domain]
        domains[domain] += n
    assert set(domains) == {"law", "code"} and 250 < domains["law"] < 350
    assert all(len(PROMPTS[d]) >= 10 for d in DOMAINS)


@pytest.mark.parametrize(("text", "seconds"), [("90", 90), ("60s", 60), ("2m", 120),
                                               ("1h30m", 5400), ("1.5m", 90)])  # fmt: skip
def test_durations(text: str, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "abc", "10x", "0s", "-5s"])
def test_bad_durations(text: str) -> None:
    with pytest.raises(ValueError):
        parse_duration(text)
