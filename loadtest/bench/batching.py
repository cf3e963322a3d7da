"""A served model's batching curve: TTFT and decode speed against concurrency.

``garden profile`` runs this against a running garden. Each model is named
explicitly, so the router passes the requests through without routing.
At each concurrency ``c``, ``c`` closed-loop clients each send ``rounds``
streaming completions of ``prompt_tokens`` prompt tokens and exactly
``output_tokens`` output tokens (``ignore_eos``). Every prompt starts with
a unique token, so vLLM's prefix cache cannot skip a prefill.

:func:`to_profile` turns the curve into the service profile that
``garden simulate`` reads (:class:`autoscaling.simulate.Profile`):

* ``prefill_tokens_per_s``: the median of prompt tokens / TTFT at the lowest
  concurrency. TTFT as the client sees it includes the router and the first
  decode step, so this under-states the engine's raw prefill rate; it is
  the rate that decides whether a TTFT SLO is met.
* ``decode_tokens_per_s_at_batch``: at each concurrency, the median over
  requests of (output tokens - 1) / (last token time - first token time).
"""

from __future__ import annotations

import asyncio
import statistics
import time
import uuid
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import openai

from cluster.exceptions import ClusterError

__all__ = ["CurvePoint", "Sample", "measure_curve", "to_profile"]

#: Filler text for prompts: ordinary words, so every tokenizer splits them alike.
_FILLER = (
    "the garden keeps many models and each one answers questions about its own field "
    "while a general model takes everything else "
)


@dataclass(frozen=True, slots=True)
class Sample:
    """One streamed request as the client saw it."""

    ttft_s: float
    decode_s: float
    prompt_tokens: int
    completion_tokens: int


@dataclass(frozen=True, slots=True)
class CurvePoint:
    """The figures at one concurrency (medians and p90 over its requests)."""

    concurrency: int
    requests: int
    prompt_tokens: int
    ttft_p50_ms: float
    ttft_p90_ms: float
    decode_tokens_per_s: float
    output_tokens_per_s: float
    prefill_tokens_per_s: float

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready, rounded."""
        return {k: round(v, 2) if isinstance(v, float) else v for k, v in asdict(self).items()}


async def _one(client: openai.AsyncOpenAI, model: str, prompt: str, output_tokens: int) -> Sample:
    started = time.perf_counter()
    first = last = 0.0
    usage = None
    stream = await client.completions.create(
        model=model,
        prompt=f"{uuid.uuid4().hex} {prompt}",
        max_tokens=output_tokens,
        temperature=0.0,
        stream=True,
        stream_options={"include_usage": True},
        extra_body={"ignore_eos": True},
    )
    async for chunk in stream:
        now = time.perf_counter()
        if chunk.choices and chunk.choices[0].text:
            first, last = first or now, now
        if chunk.usage is not None:
            usage = chunk.usage
    if not first or usage is None:
        raise ClusterError(f"model {model!r} streamed no tokens or no usage; cannot profile it")
    return Sample(first - started, last - first, usage.prompt_tokens, usage.completion_tokens)


def _p(values: Sequence[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def _point(concurrency: int, samples: list[Sample], wall_s: float) -> CurvePoint:
    ttfts = [s.ttft_s for s in samples]
    decode = [(s.completion_tokens - 1) / s.decode_s for s in samples if s.decode_s > 0] or [0.0]
    return CurvePoint(
        concurrency=concurrency,
        requests=len(samples),
        prompt_tokens=round(statistics.median(s.prompt_tokens for s in samples)),
        ttft_p50_ms=statistics.median(ttfts) * 1000,
        ttft_p90_ms=_p(ttfts, 0.9) * 1000,
        decode_tokens_per_s=statistics.median(decode),
        output_tokens_per_s=sum(s.completion_tokens for s in samples) / wall_s,
        prefill_tokens_per_s=statistics.median(s.prompt_tokens / s.ttft_s for s in samples),
    )


async def _prompt_of(client: openai.AsyncOpenAI, model: str, tokens: int) -> str:
    """Filler of about ``tokens`` tokens, sized with one probe of the model's tokenizer."""
    probe = (_FILLER * 4).strip()
    sample = await _one(client, model, probe, 2)
    per_char = sample.prompt_tokens / (len(probe) + 33)  # + the unique prefix
    chars = max(1, int(tokens / per_char) - 33)
    return (_FILLER * (chars // len(_FILLER) + 1))[:chars]


async def _measure(
    endpoint: str,
    model: str,
    concurrencies: Sequence[int],
    prompt_tokens: int,
    output_tokens: int,
    rounds: int,
    api_key: str,
) -> list[CurvePoint]:
    # The openai client needs some key; a garden without router.auth ignores it.
    key = api_key or "garden-profile"
    client = openai.AsyncOpenAI(base_url=endpoint, api_key=key, max_retries=0)
    try:
        prompt = await _prompt_of(client, model, prompt_tokens)
        await _one(client, model, prompt, output_tokens)  # warm-up, not counted
        points = []
        for c in concurrencies:

            async def worker() -> list[Sample]:
                return [await _one(client, model, prompt, output_tokens) for _ in range(rounds)]

            started = time.perf_counter()
            results = await asyncio.gather(*(worker() for _ in range(c)))
            wall = time.perf_counter() - started
            points.append(_point(c, [s for r in results for s in r], wall))
        return points
    except openai.APIError as err:
        raise ClusterError(f"profiling {model!r} at {endpoint} failed: {err}") from err
    finally:
        await client.close()


def measure_curve(
    endpoint: str,
    model: str,
    concurrencies: Sequence[int] = (1, 2, 4, 8),
    *,
    prompt_tokens: int = 512,
    output_tokens: int = 64,
    rounds: int = 3,
    api_key: str = "",
) -> list[CurvePoint]:
    """The batching curve of ``model`` served at ``endpoint`` (an OpenAI base URL).

    ``api_key`` is sent when the garden has ``router.auth``.
    """
    if not concurrencies or min(concurrencies) < 1:
        raise ValueError(f"concurrencies must be >= 1, got {list(concurrencies)}")
    if output_tokens < 2:
        raise ValueError(f"output_tokens must be >= 2 to time decoding, got {output_tokens}")
    return asyncio.run(
        _measure(
            endpoint,
            model,
            sorted(set(concurrencies)),
            prompt_tokens,
            output_tokens,
            rounds,
            api_key,
        )
    )


def to_profile(
    curve: Sequence[CurvePoint],
    *,
    max_batch: int,
    cold_start_s: float,
    kv_cache_tokens: int | None = None,
) -> dict[str, Any]:
    """The simulator's profile of one replica, from its measured curve (see module doc)."""
    if not curve:
        raise ValueError("an empty curve has no profile")
    lowest = min(curve, key=lambda p: p.concurrency)
    profile: dict[str, Any] = {
        "max_batch": max_batch,
        "prefill_tokens_per_s": round(lowest.prefill_tokens_per_s, 1),
        "decode_tokens_per_s_at_batch": {
            p.concurrency: round(p.decode_tokens_per_s, 2)
            for p in curve
            if p.decode_tokens_per_s > 0
        },
        "cold_start_s": round(cold_start_s, 1),
    }
    if kv_cache_tokens:
        profile["kv_cache_tokens"] = kv_cache_tokens
    return profile
