"""``garden bench soak``: Locust near capacity for minutes; then what grew and what is left.

:func:`run_soak` runs ``garden loadtest``'s Locust driver (:mod:`loadtest.run`)
against the running garden for ``minutes``, with ``auto`` requests from as
many users as the garden's models take at their target load, and meanwhile
samples the router replicas' resident memory every ``sample_s``. It reports:

* ``requests`` and ``errors`` (every failed request, any status or a cut
  stream);
* ``router_rss_growth_mib_per_1k``: how fast a router replica's resident
  memory grows against the requests the garden served, in MiB per 1,000
  requests: the least-squares slope of each router process's samples,
  averaged over the processes, over the steady state (the samples
  after the first minute, when a run is longer than two; its warm-up fills
  caches once). ``router_rss_growth_whole_run_mib_per_1k`` is the same over
  every sample, and ``router_rss_mib`` the routers' summed first and last
  samples;
* ``left_running``: requests the engines still run or queue once the load
  has stopped (vLLM's ``num_requests_running`` and ``num_requests_waiting``
  gauges, through Ray's Prometheus endpoint, polled until they read zero or
  ``settle_s`` passes): a request the router lost track of keeps running;
* ``p99_ttft_ms``: the first and the last minute's p99 time to first token,
  and their ratio (``drift``).
"""

from __future__ import annotations

import re
import statistics
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import httpx
import psutil

from cluster.config import GardenConfig
from cluster.processes import serve_replicas
from loadtest.run import LoadTest, Progress, run_loadtest
from loadtest.summary import SLO, percentile, read_records

__all__ = ["default_users", "run_soak"]

_GAUGES = re.compile(
    r"^ray_vllm_num_requests_(?:running|waiting)(?:\{[^}]*\})?\s+([0-9.eE+-]+)\s*$", re.M
)


def default_users(garden: GardenConfig) -> int:
    """Users that keep the garden near capacity: each model's target load at its floor."""
    return max(
        1,
        round(
            sum(
                m.autoscaling.target_ongoing_requests * max(1, m.autoscaling.min_replicas)
                for m in garden.chat_models
            )
        ),
    )


def _router_rss_mib(app: str, router: str) -> dict[int, float]:
    """Resident MiB of each router replica process, by pid."""
    out = {}
    for proc in serve_replicas(app, router):
        try:
            out[proc.pid] = proc.memory_info().rss / 2**20
        except (OSError, psutil.Error):
            continue
    return out


def _growth(samples: list[tuple[float, float, dict[int, float]]], since_s: float) -> float | None:
    """Mean per-process slope of RSS against requests (MiB per 1,000), from ``since_s`` on.

    Each router process is fitted over the samples it is in (one that was
    not found in a sample, or restarted, is no dip).
    """
    kept = [s for s in samples if s[1] >= since_s]
    slopes = []
    for pid in {p for s in kept for p in s[2]}:
        points = [(s[0], s[2][pid]) for s in kept if pid in s[2]]
        if len({x for x, _ in points}) >= 2:
            xs, ys = zip(*points, strict=True)
            slopes.append(statistics.linear_regression(xs, ys).slope * 1000)
    return round(statistics.fmean(slopes), 4) if slopes else None


def engine_requests(metrics_url: str) -> float | None:
    """Requests running or waiting in every engine, from Ray's Prometheus text (None: no gauge)."""
    try:
        text = httpx.get(metrics_url, timeout=10).text
    except httpx.HTTPError:
        return None
    values = [float(v) for v in _GAUGES.findall(text)]
    return sum(values) if values else None


def _first_and_last_minute_p99(requests: list[dict[str, Any]]) -> dict[str, float | None]:
    timed = [r for r in requests if r.get("ok") and r.get("ttft_ms") is not None]
    if not timed:
        return {"first_minute": None, "last_minute": None, "drift": None}
    start = min(r["start"] for r in timed)
    end = max(r["start"] for r in timed)
    first = [r["ttft_ms"] for r in timed if r["start"] < start + 60]
    last = [r["ttft_ms"] for r in timed if r["start"] >= end - 60]
    p_first, p_last = percentile(first, 99), percentile(last, 99)
    return {
        "first_minute": round(p_first, 1),
        "last_minute": round(p_last, 1),
        "drift": round(p_last / p_first, 3) if p_first > 0 else None,
    }


def run_soak(
    garden: GardenConfig,
    endpoint: str,
    *,
    minutes: float,
    out: Path,
    users: int | None = None,
    max_tokens: int = 32,
    api_key: str = "",
    router: str = "router",
    app: str | None = None,
    metrics_url: str | None = None,
    sample_s: float = 10.0,
    settle_s: float = 60.0,
    progress: Progress | None = None,
) -> dict[str, Any]:
    """Soak the garden at ``endpoint`` (an OpenAI base URL) for ``minutes``; the JSON report.

    ``app`` is the running garden's Serve application (default: the
    config's name), ``metrics_url`` Ray's Prometheus endpoint (default: the
    config's ``telemetry.metrics_port`` on this machine).
    """
    app = app or garden.name
    users = users or default_users(garden)
    test = LoadTest(
        host=endpoint.removesuffix("/v1"),
        users=users,
        duration_s=minutes * 60,
        model="auto",
        max_tokens=max_tokens,
        api_key=api_key,
    )
    records = out / "records.jsonl"
    began = time.monotonic()
    # (requests served, seconds in, RSS MiB by router pid)
    samples = [(0.0, 0.0, _router_rss_mib(app, router))]
    last = [began]

    def tick(elapsed_s: float, duration_s: float, note: str) -> None:
        if progress is not None:
            progress(elapsed_s, duration_s, note)
        if time.monotonic() - last[0] >= sample_s:
            last[0] = time.monotonic()
            done = sum(1 for r in read_records(records) if "kind" not in r)
            samples.append((float(done), last[0] - began, _router_rss_mib(app, router)))

    slos: Mapping[str, SLO] = {m.name: SLO(m.slo.ttft_ms, m.slo.tpot_ms) for m in garden.models}
    summary = run_loadtest(test, out, slos, tick)
    rows = [r for r in read_records(records) if "kind" not in r]
    samples.append((float(len(rows)), time.monotonic() - began, _router_rss_mib(app, router)))
    metrics_url = metrics_url or f"http://127.0.0.1:{garden.telemetry.metrics_port}/metrics"
    deadline = time.monotonic() + settle_s
    left = engine_requests(metrics_url)
    while left and time.monotonic() < deadline:
        time.sleep(2)
        left = engine_requests(metrics_url)
    steady_from = 60.0 if minutes > 2 else 0.0
    first, final = sum(samples[0][2].values()), sum(samples[-1][2].values())
    return {
        "minutes": minutes,
        "users": users,
        "requests": len(rows),
        "errors": sum(1 for r in rows if not r.get("ok")),
        "error_kinds": summary["failures"]["errors"],
        "throughput_rps": summary["throughput"]["requests_per_s"],
        "router_rss_mib": {"first": round(first, 1), "last": round(final, 1)},
        "router_rss_growth_mib_per_1k": _growth(samples, steady_from),
        "router_rss_growth_whole_run_mib_per_1k": _growth(samples, 0.0),
        "left_running": left,
        "p99_ttft_ms": _first_and_last_minute_p99(rows),
        "samples": [
            {
                "requests": n,
                "s": round(t, 1),
                "router_rss_mib": {p: round(m, 1) for p, m in r.items()},
            }
            for n, t, r in samples
        ],
    }
