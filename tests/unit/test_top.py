"""``garden top``'s figures from two scrapes, and its rendering without a terminal."""

from __future__ import annotations

import pytest
from rich.console import Console

from cluster.cli._top import render
from cluster.config import load_config
from cluster.top import parse_scrape, snapshot

pytestmark = pytest.mark.unit

BEFORE = """\
# TYPE ray_vllm_num_requests_running gauge
ray_vllm_num_requests_running{model_name="law",ReplicaId="a"} 1.0
# TYPE ray_vllm_generation_tokens_total counter
ray_vllm_generation_tokens_total{model_name="law",ReplicaId="a"} 1000.0
ray_vllm_generation_tokens_total{model_name="generalist",ReplicaId="g"} 500.0
# TYPE ray_gen_ai_server_time_to_first_token histogram
ray_gen_ai_server_time_to_first_token_bucket{gen_ai_response_model="law",le="0.1"} 10.0
ray_gen_ai_server_time_to_first_token_bucket{gen_ai_response_model="law",le="0.5"} 10.0
ray_gen_ai_server_time_to_first_token_bucket{gen_ai_response_model="law",le="+Inf"} 10.0
# TYPE ray_garden_route_total counter
ray_garden_route_total{domain="law",model="law",reason="specialist"} 10.0
"""

AFTER = """\
# TYPE ray_vllm_num_requests_running gauge
ray_vllm_num_requests_running{model_name="law",ReplicaId="a"} 3.0
ray_vllm_num_requests_running{model_name="law",ReplicaId="b"} 2.0
# TYPE ray_vllm_num_requests_waiting gauge
ray_vllm_num_requests_waiting{model_name="law",ReplicaId="a"} 4.0
# TYPE ray_vllm_kv_cache_usage_perc gauge
ray_vllm_kv_cache_usage_perc{model_name="law",ReplicaId="a"} 0.25
ray_vllm_kv_cache_usage_perc{model_name="law",ReplicaId="b"} 0.5
# TYPE ray_vllm_generation_tokens_total counter
ray_vllm_generation_tokens_total{model_name="law",ReplicaId="a"} 1500.0
ray_vllm_generation_tokens_total{model_name="law",ReplicaId="b"} 100.0
ray_vllm_generation_tokens_total{model_name="generalist",ReplicaId="g2"} 50.0
# TYPE ray_gen_ai_server_time_to_first_token histogram
ray_gen_ai_server_time_to_first_token_bucket{gen_ai_response_model="law",le="0.1"} 60.0
ray_gen_ai_server_time_to_first_token_bucket{gen_ai_response_model="law",le="0.5"} 110.0
ray_gen_ai_server_time_to_first_token_bucket{gen_ai_response_model="law",le="+Inf"} 110.0
# TYPE ray_garden_route_total counter
ray_garden_route_total{domain="law",model="law",reason="specialist"} 40.0
ray_garden_route_total{domain="law",model="generalist",reason="overloaded"} 10.0
"""

REPLICAS = {"law": ("HEALTHY", 2, 2), "generalist": ("UPSCALING", 1, 2)}


def _view():  # type: ignore[no-untyped-def]
    garden = load_config(None)
    return snapshot(garden, parse_scrape(BEFORE, 100.0), parse_scrape(AFTER, 110.0), REPLICAS)


def test_figures_come_from_the_difference_of_two_scrapes() -> None:
    view = _view()
    law = next(m for m in view.models if m.name == "law")
    assert (law.replicas_running, law.replicas_target, law.status) == (2, 2, "HEALTHY")
    assert (law.requests_running, law.requests_waiting) == (5.0, 4.0)  # gauges, summed
    assert law.kv_cache_use == 0.5  # the fullest replica
    assert law.tokens_per_s == pytest.approx((500 + 100) / 10)  # a new replica counts whole
    # 100 first tokens in the window: 50 under 0.1 s, 50 in (0.1, 0.5].
    assert law.ttft_p50_ms == pytest.approx(100.0)
    assert law.ttft_p99_ms == pytest.approx((0.1 + 0.4 * 49 / 50) * 1000)
    assert view.routed == 40 and law.route_share == pytest.approx(30 / 40)
    assert view.reasons == {"specialist": 30.0, "overloaded": 10.0}
    generalist = next(m for m in view.models if m.name == "generalist")
    assert generalist.tokens_per_s == pytest.approx(50 / 10)  # a restarted counter: its value
    assert generalist.ttft_p50_ms is None  # no first token in the window
    medicine = next(m for m in view.models if m.name == "medicine")
    assert medicine.status == "UNKNOWN" and medicine.requests_running is None
    garden = load_config(None)
    cost = {m.name: m.cost_per_hour for m in garden.models}
    assert view.cost_per_hour == pytest.approx(2 * cost["law"] + cost["generalist"])
    assert view.to_json()["models"][1]["name"] == "law"


def test_the_view_renders_without_a_terminal() -> None:
    console = Console(record=True, width=160, force_terminal=False, color_system=None)
    console.print(render(_view()))
    text = console.export_text()
    assert "garden top" in text and "over 10 s" in text
    assert "law" in text and "HEALTHY" in text and "2/2" in text
    assert "100 ms" in text and "75.0%" in text and "50.0%" in text
    assert "overloaded" in text and "25.0%" in text
    assert "no budget" in text
    assert "\x1b[" not in text  # no escape codes when no terminal is attached


def test_a_window_shorter_than_rays_report_interval_shows_gauges_only() -> None:
    garden = load_config(None)
    before, after = parse_scrape(BEFORE, 100.0), parse_scrape(AFTER, 105.0)
    view = snapshot(garden, before, after, REPLICAS, min_window_s=20.0)
    law = next(m for m in view.models if m.name == "law")
    assert (law.requests_running, law.kv_cache_use) == (5.0, 0.5)
    assert law.tokens_per_s is None and law.ttft_p50_ms is None and law.route_share is None
    assert view.routed == 0 and view.reasons == {}
