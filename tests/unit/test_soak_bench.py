"""``garden bench soak``'s pure parts: the engines' gauges, the p99 drift, the default users."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from cluster.config import load_config
from loadtest.bench import soak

pytestmark = pytest.mark.unit

_METRICS = """\
# HELP ray_vllm_num_requests_running Number of requests in model execution batches.
# TYPE ray_vllm_num_requests_running gauge
ray_vllm_num_requests_running{model_name="law",engine="0"} 2.0
ray_vllm_num_requests_running{model_name="code",engine="0"} 0.0
ray_vllm_num_requests_waiting{model_name="law",engine="0"} 1.0
ray_vllm_num_requests_running_total{model_name="law"} 99.0
"""


def test_engine_requests_sum_running_and_waiting(monkeypatch: pytest.MonkeyPatch) -> None:
    def get(url: str, **_: Any) -> httpx.Response:
        return httpx.Response(200, text=_METRICS if "full" in url else "# nothing\n")

    monkeypatch.setattr(httpx, "get", get)
    assert soak.engine_requests("http://full/metrics") == 3.0
    assert soak.engine_requests("http://empty/metrics") is None  # no gauge: unknown, not 0


def test_p99_drift_compares_the_first_and_last_minute() -> None:
    rows = [{"ok": True, "start": 1000.0 + t, "ttft_ms": 100.0} for t in range(0, 60)]
    rows += [{"ok": True, "start": 1120.0 + t, "ttft_ms": 300.0} for t in range(0, 60)]
    rows.append({"ok": False, "start": 1100.0, "ttft_ms": None})
    p99 = soak._first_and_last_minute_p99(rows)
    assert p99 == {"first_minute": 100.0, "last_minute": 300.0, "drift": 3.0}


def test_default_users_fill_each_models_target_at_its_floor() -> None:
    garden = load_config(None)
    expected = sum(
        m.autoscaling.target_ongoing_requests * max(1, m.autoscaling.min_replicas)
        for m in garden.chat_models
    )
    assert soak.default_users(garden) == round(expected) > 0


def test_growth_is_per_router_and_skips_the_warm_up() -> None:
    # Two routers: one grows 1 MiB per 1k requests, one 3; a sample missing one is no dip.
    samples = [
        (0.0, 0.0, {1: 500.0, 2: 500.0}),
        (1000.0, 30.0, {1: 550.0, 2: 560.0}),  # warm-up: caches fill
        (2000.0, 61.0, {1: 551.0, 2: 563.0}),
        (3000.0, 91.0, {2: 566.0}),  # router 1 not seen in this sample
        (4000.0, 121.0, {1: 553.0, 2: 569.0}),
    ]
    assert soak._growth(samples, 60.0) == pytest.approx(2.0)
    assert soak._growth(samples, 0.0) > 10  # the warm-up counted
    assert soak._growth(samples[:1], 0.0) is None
