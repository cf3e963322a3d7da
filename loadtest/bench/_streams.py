"""Timed OpenAI streaming requests over raw HTTP, for side-by-side benchmarks.

The same light client (httpx, no SDK objects per chunk) drives every setup,
so on a 2-core machine the client's own CPU cost is equal for all of them.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import statistics
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import httpx

__all__ = ["Round", "Sample", "Target", "latency_figures", "run_round", "summarize"]


@dataclass(frozen=True, slots=True)
class Target:
    """One OpenAI-compatible endpoint and the model name to ask it for."""

    name: str
    base_url: str
    model: str
    #: Sent as ``Authorization: Bearer`` when set (a garden with ``router.auth``).
    api_key: str = ""


@dataclass(frozen=True, slots=True)
class Sample:
    """One streamed chat completion; ``served_by`` is ``x-garden-model`` when present."""

    ttft_s: float
    e2e_s: float
    ok: bool
    served_by: str | None = None
    #: Seconds between consecutive chunks with content, after the first.
    itls_s: tuple[float, ...] = ()


@dataclass(slots=True)
class Round:
    """The samples of one burst of concurrent requests, and its wall time."""

    samples: list[Sample] = field(default_factory=list)
    wall_s: float = 0.0


async def _one(client: httpx.AsyncClient, target: Target, prompt: str, tokens: int) -> Sample:
    body = {
        "model": target.model,
        "messages": [{"role": "user", "content": prompt}],
        "max_tokens": tokens,
        "temperature": 0.0,
        "stream": True,
        "ignore_eos": True,
    }
    started = time.perf_counter()
    arrivals: list[float] = []
    done = False
    headers = {"authorization": f"Bearer {target.api_key}"} if target.api_key else {}
    url = f"{target.base_url}/chat/completions"
    async with client.stream("POST", url, json=body, headers=headers) as reply:
        served_by = reply.headers.get("x-garden-model")
        async for line in reply.aiter_lines():
            if not line.startswith("data: "):
                continue
            if line == "data: [DONE]":
                done = True
            elif _has_content(line[6:]):
                arrivals.append(time.perf_counter())
        first = arrivals[0] if arrivals else None
        ok = reply.status_code == 200 and done and first is not None
    ended = time.perf_counter()
    itls = tuple(b - a for a, b in itertools.pairwise(arrivals))
    return Sample((first or ended) - started, ended - started, ok, served_by, itls)


def _has_content(payload: str) -> bool:
    choices: list[dict[str, Any]] = json.loads(payload).get("choices") or []
    return any((c.get("delta") or {}).get("content") for c in choices)


async def run_round(
    client: httpx.AsyncClient,
    target: Target,
    prompts: Sequence[str],
    concurrency: int,
    tokens: int,
) -> Round:
    """``concurrency`` requests at once, prompts taken in turn; returns when all ended."""
    started = time.perf_counter()
    samples = await asyncio.gather(
        *(_one(client, target, prompts[i % len(prompts)], tokens) for i in range(concurrency))
    )
    return Round(list(samples), time.perf_counter() - started)


def _q(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def summarize(rounds: Sequence[Round]) -> dict[str, Any]:
    """p50/p99 TTFT, inter-token and end-to-end latency (ms), throughput (requests/s), failures.

    The inter-token latency is the gap between consecutive chunks with
    content, as vLLM's benchmark client measures it: several tokens in one
    chunk count as one gap.
    """
    samples = [s for r in rounds for s in r.samples]
    good = [s for s in samples if s.ok]
    if not good:
        return {"requests": len(samples), "failures": len(samples)}
    ttft = [s.ttft_s * 1000 for s in good]
    e2e = [s.e2e_s * 1000 for s in good]
    itl = [gap * 1000 for s in good for gap in s.itls_s] or [0.0]
    return {
        "requests": len(samples),
        "failures": len(samples) - len(good),
        **latency_figures(ttft, itl, e2e),
        "throughput_rps": round(len(good) / sum(r.wall_s for r in rounds), 3),
    }


def latency_figures(ttft: list[float], itl: list[float], e2e: list[float]) -> dict[str, float]:
    """p50 and p99 of each of TTFT, inter-token and end-to-end latency (ms in, ms out)."""
    out: dict[str, float] = {}
    for name, values in (("ttft", ttft), ("itl", itl), ("e2e", e2e)):
        out[f"p50_{name}_ms"] = round(statistics.median(values), 2)
        out[f"p99_{name}_ms"] = round(_q(values, 0.99), 2)
    return out
