"""What ``garden top`` shows: the running garden, from Ray's metrics and Serve's state.

Two scrapes of Ray's Prometheus endpoint (``telemetry.metrics_port``), some
seconds apart, give every rate and window figure as the difference of their
counters and histogram buckets, as Prometheus' own ``rate()`` and
``histogram_quantile()`` would over that window; gauges come from the later
scrape. Serve's state gives the replicas. Nothing here reads a side channel
of the router or the replicas: only what Ray exports.

:func:`snapshot` is pure (given the scrapes and Serve's replica counts), so
tests feed it scrapes they wrote.
"""

from __future__ import annotations

import math
import time
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

from cluster.config import GardenConfig

__all__ = ["ModelView", "Scrape", "TopSnapshot", "parse_scrape", "scrape", "snapshot"]

#: The series ``garden top`` reads (Ray's exporter adds ``ray_`` to every name).
RUNNING = "ray_vllm_num_requests_running"
WAITING = "ray_vllm_num_requests_waiting"
KV_CACHE = "ray_vllm_kv_cache_usage_perc"
GENERATED = "ray_vllm_generation_tokens_total"
TTFT = "ray_gen_ai_server_time_to_first_token_bucket"
ROUTES = "ray_garden_route_total"
_WANTED = (RUNNING, WAITING, KV_CACHE, GENERATED, TTFT, ROUTES)


@dataclass(frozen=True)
class Scrape:
    """One scrape: when it was taken, and each wanted series' samples as (labels, value)."""

    at: float
    samples: Mapping[str, list[tuple[dict[str, str], float]]]


def parse_scrape(text: str, at: float) -> Scrape:
    """The wanted series of a Prometheus text exposition (prometheus_client's parser)."""
    from prometheus_client.parser import text_string_to_metric_families

    samples: dict[str, list[tuple[dict[str, str], float]]] = defaultdict(list)
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name in _WANTED:
                samples[sample.name].append((dict(sample.labels), float(sample.value)))
    return Scrape(at, dict(samples))


def scrape(url: str, timeout_s: float = 5.0) -> Scrape:
    """Scrape ``url`` (Ray's Prometheus endpoint) now."""
    import httpx

    at = time.monotonic()
    response = httpx.get(url, timeout=timeout_s)
    response.raise_for_status()
    return parse_scrape(response.text, at)


@dataclass(frozen=True)
class ModelView:
    """One model's line of ``garden top``. None: Ray exported no such series yet."""

    name: str
    role: str
    status: str
    replicas_running: int
    replicas_target: int
    requests_running: float | None
    requests_waiting: float | None
    ttft_p50_ms: float | None
    ttft_p99_ms: float | None
    tokens_per_s: float | None
    kv_cache_use: float | None
    route_share: float | None
    cost_per_hour: float


@dataclass(frozen=True)
class TopSnapshot:
    """What ``garden top`` shows at one moment, over ``window_s`` seconds."""

    window_s: float
    models: list[ModelView]
    #: Requests to virtual models in the window, and those per route reason.
    routed: float
    reasons: dict[str, float] = field(default_factory=dict)
    #: Replicas running times their cost_per_hour, and the budget's ceiling.
    cost_per_hour: float = 0.0
    budget_per_hour: float | None = None

    def to_json(self) -> dict[str, Any]:
        """The snapshot as plain JSON values."""
        return asdict(self)


def _by(samples: Iterable[tuple[dict[str, str], float]], label: str) -> dict[str, float]:
    out: dict[str, float] = defaultdict(float)
    for labels, value in samples:
        out[labels.get(label, "")] += value
    return out


def _max_by(samples: Iterable[tuple[dict[str, str], float]], label: str) -> dict[str, float]:
    out: dict[str, float] = {}
    for labels, value in samples:
        key = labels.get(label, "")
        out[key] = max(out.get(key, value), value)
    return out


def _increase(
    before: Scrape, after: Scrape, name: str, label: str, *extra: str
) -> dict[tuple[str, ...], float]:
    """Each series' increase between the scrapes, summed by ``label`` (and ``extra``).

    A counter that went down restarted (its replica did): its later value is
    its increase, as Prometheus counts a reset.
    """

    def keyed(scrape: Scrape) -> dict[tuple[tuple[str, str], ...], float]:
        return {tuple(sorted(lbl.items())): v for lbl, v in scrape.samples.get(name, [])}

    old = keyed(before)
    out: dict[tuple[str, ...], float] = defaultdict(float)
    for series, value in keyed(after).items():
        labels = dict(series)
        previous = old.get(series, 0.0)
        grown = value - previous if value >= previous else value
        out[(labels.get(label, ""), *(labels.get(e, "") for e in extra))] += grown
    return out


def _quantile(q: float, buckets: Mapping[float, float]) -> float | None:
    """``histogram_quantile(q, ...)`` of cumulative bucket counts by upper bound."""
    bounds = sorted(buckets)
    if not bounds or buckets[bounds[-1]] <= 0:
        return None
    total = buckets[bounds[-1]]
    rank = q * total
    lower, below = 0.0, 0.0
    for bound in bounds:
        count = buckets[bound]
        if count >= rank:
            if math.isinf(bound):
                return lower  # Prometheus answers the highest finite bound
            if count == below:
                return bound
            return lower + (bound - lower) * (rank - below) / (count - below)
        lower, below = bound, count
    return lower


def snapshot(
    garden: GardenConfig,
    before: Scrape,
    after: Scrape,
    replicas: Mapping[str, tuple[str, int, int]],
    *,
    min_window_s: float = 0.0,
) -> TopSnapshot:
    """The view of ``garden`` between two scrapes.

    ``replicas`` is each deployment's (status, running, target) as Serve
    reports it now. Under ``min_window_s`` the window's rates and quantiles
    are left out (None): Ray's processes report their counters every 10 s,
    so a shorter window may show none of the traffic, or twice of it.
    """
    window = max(after.at - before.at, 1e-9)
    if window < min_window_s:
        before = after  # gauges only, until the window is long enough
    running = _by(after.samples.get(RUNNING, []), "model_name")
    waiting = _by(after.samples.get(WAITING, []), "model_name")
    kv = _max_by(after.samples.get(KV_CACHE, []), "model_name")
    generated = _increase(before, after, GENERATED, "model_name")
    buckets = _increase(before, after, TTFT, "gen_ai_response_model", "le")
    routes = _increase(before, after, ROUTES, "model", "reason")
    routed = sum(routes.values())
    by_model: dict[str, float] = defaultdict(float)
    reasons: dict[str, float] = defaultdict(float)
    for (model, reason), n in routes.items():
        by_model[model] += n
        reasons[reason] += n
    ttft: dict[str, dict[float, float]] = defaultdict(dict)
    for (model, le), n in buckets.items():
        ttft[model][float(le)] = n
    views = []
    cost = 0.0
    for spec in garden.models:
        status, live, target = replicas.get(spec.name, ("UNKNOWN", 0, 0))
        cost += live * spec.cost_per_hour
        p50 = _quantile(0.5, ttft.get(spec.name, {}))
        p99 = _quantile(0.99, ttft.get(spec.name, {}))
        tokens = generated.get((spec.name,)) if window >= min_window_s else None
        views.append(
            ModelView(
                name=spec.name,
                role=spec.role,
                status=status,
                replicas_running=live,
                replicas_target=target,
                requests_running=running.get(spec.name),
                requests_waiting=waiting.get(spec.name),
                ttft_p50_ms=None if p50 is None else p50 * 1000,
                ttft_p99_ms=None if p99 is None else p99 * 1000,
                tokens_per_s=None if tokens is None else tokens / window,
                kv_cache_use=kv.get(spec.name),
                route_share=(by_model.get(spec.name, 0.0) / routed) if routed else None,
                cost_per_hour=spec.cost_per_hour,
            )
        )
    return TopSnapshot(
        window_s=window,
        models=views,
        routed=routed,
        reasons={r: n for r, n in sorted(reasons.items(), key=lambda kv: -kv[1]) if n > 0},
        cost_per_hour=cost,
        budget_per_hour=garden.budget.max_cost_per_hour,
    )
