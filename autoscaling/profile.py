"""Service profiles: how fast one replica of a model prefills, decodes and starts.

A profile file (YAML or JSON) holds ``models: {name: profile}`` and an
optional ``defaults: profile`` for models it does not name. A profile is::

    max_batch: 32                    # sequences the engine batches at once
    prefill_tokens_per_s: 9750       # prompt tokens one replica prefills per second
    decode_tokens_per_s_at_batch: {1: 75, 8: 62, 32: 30}   # per sequence
    cold_start_s: 120                # from "scale up" to serving
    kv_cache_tokens: 160000          # optional: tokens the KV cache holds

Decode speed between the listed batch sizes is interpolated linearly; past
the largest one the replica's total decode throughput stays flat.
"""

from __future__ import annotations

import bisect
import json
import math
from importlib import resources
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

__all__ = [
    "Profile",
    "ProfileError",
    "ProfileSet",
    "TokenPrice",
    "capacity_at_slo",
    "load_profiles",
    "prefill_utilization",
    "shipped_profiles",
    "token_prices",
]

DEFAULT_PROFILE = "default.yaml"


class ProfileError(ValueError):
    """A profile file that cannot be used; the message names the file and the key."""


class Profile(BaseModel):
    """One replica's service model (see the module docstring for the fields)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    max_batch: int = Field(ge=1, le=4096)
    prefill_tokens_per_s: float = Field(gt=0)
    decode_tokens_per_s_at_batch: dict[int, float] = Field(min_length=1)
    cold_start_s: float = Field(ge=0)
    kv_cache_tokens: int | None = Field(None, ge=1)

    @field_validator("decode_tokens_per_s_at_batch")
    @classmethod
    def _positive(cls, v: dict[int, float]) -> dict[int, float]:
        bad = {b: r for b, r in v.items() if b < 1 or r <= 0}
        if bad:
            raise ValueError(f"batch sizes must be >= 1 and rates > 0, got {bad}")
        return dict(sorted(v.items()))

    def decode_batch(self, tpot_s: float) -> int:
        """The largest batch (at most ``max_batch``) whose sequences each decode within ``tpot_s``.

        At least 1: a replica always decodes one sequence, however slowly.
        """
        best = 1
        for batch in range(1, self.max_batch + 1):
            if 1.0 / self.decode_rate(batch) <= tpot_s:
                best = batch
        return best

    def decode_rate(self, batch: int) -> float:
        """Tokens per second each of ``batch`` decoding sequences gets."""
        sizes = list(self.decode_tokens_per_s_at_batch)
        rates = list(self.decode_tokens_per_s_at_batch.values())
        if batch <= sizes[0]:
            return rates[0]
        if batch >= sizes[-1]:
            # Past the last measured batch the GPU is saturated: the total is flat.
            return rates[-1] * sizes[-1] / batch
        i = bisect.bisect_right(sizes, batch)
        b0, b1, r0, r1 = sizes[i - 1], sizes[i], rates[i - 1], rates[i]
        return r0 + (r1 - r0) * (batch - b0) / (b1 - b0)


class ProfileSet(BaseModel):
    """The profiles of a garden's models, with a fallback for unnamed ones."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    models: dict[str, Profile] = Field(default_factory=dict)
    defaults: Profile | None = None

    def for_model(self, name: str) -> Profile:
        """The profile of model ``name``; ProfileError when there is none."""
        found = self.models.get(name, self.defaults)
        if found is None:
            raise ProfileError(
                f"no profile for model {name!r} (profiles: {sorted(self.models)}, no defaults)"
            )
        return found


def shipped_profiles() -> list[str]:
    """Names of the profiles shipped in ``autoscaling/profiles`` (``default``, ``h200``...)."""
    folder = resources.files("autoscaling").joinpath("profiles")
    return sorted(p.name[: -len(".yaml")] for p in folder.iterdir() if p.name.endswith(".yaml"))


def _read(path: str | Path | None) -> tuple[str, Any]:
    if path is None:
        path = DEFAULT_PROFILE[: -len(".yaml")]
    name = str(path)
    if name in shipped_profiles():  # a shipped profile by name
        text = resources.files("autoscaling").joinpath("profiles", f"{name}.yaml").read_text()
        return f"autoscaling/profiles/{name}.yaml", yaml.safe_load(text)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as err:
        raise ProfileError(f"{name}: cannot read the profile file ({err.strerror})") from None
    try:
        data = json.loads(text) if name.endswith(".json") else yaml.safe_load(text)
    except (json.JSONDecodeError, yaml.YAMLError) as err:
        raise ProfileError(
            f"{name}: not valid {'JSON' if name.endswith('.json') else 'YAML'}: {err}"
        ) from None
    return name, data


def load_profiles(path: str | Path | None = None) -> ProfileSet:
    """Profiles from ``path`` (YAML, or JSON by extension), or a shipped profile by name.

    None is the shipped ``default``.
    """
    name, data = _read(path)
    if isinstance(data, dict):  # top-level x- keys hold YAML anchors, as in garden.yaml
        data = {k: v for k, v in data.items() if not str(k).startswith("x-")}
    try:
        return ProfileSet.model_validate(data)
    except ValidationError as err:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']} (got {e.get('input')!r})"
            for e in err.errors()
        )
        raise ProfileError(f"{name}: {problems}") from None


def _wait_tail(rho: float, slack_s: float, service_s: float) -> float:
    # P(prefill wait > slack) for an M/D/1 prefill queue, with Kingman's
    # exponential tail: P(W > x) ~ rho * exp(-2 (1 - rho) x / s).
    return rho * math.exp(-2.0 * (1.0 - rho) * slack_s / service_s)


def prefill_utilization(service_s: float, slack_s: float, miss: float = 0.01) -> float:
    """The highest prefill utilization at which at most ``miss`` of prompts wait past ``slack_s``.

    ``service_s`` is one prompt's prefill time; the wait's tail is the M/D/1
    queue's, by Kingman's exponential approximation. 0 when there is no slack.
    """
    if slack_s <= 0 or service_s <= 0:
        return 0.0 if slack_s <= 0 else 1.0
    lo, hi = 0.0, 1.0
    for _ in range(50):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if _wait_tail(mid, slack_s, service_s) <= miss else (lo, mid)
    return lo


def capacity_at_slo(
    profile: Profile,
    ttft_slo_s: float,
    input_tokens: float,
    output_tokens: float,
    miss: float = 0.01,
) -> float:
    """Requests one replica holds at once while at most ``miss`` of them miss the TTFT SLO.

    The replica's batch capacity at its SLO, for requests of the given mean
    size: the highest arrival rate at which the prefill queue keeps
    P(TTFT > SLO) <= ``miss``, turned into requests in the replica by
    Little's law (queueing + prefill + decode). At least 1, at most
    ``max_batch``.
    """
    service = max(input_tokens, 1.0) / profile.prefill_tokens_per_s
    slack = ttft_slo_s - service
    if slack <= 0:
        return 1.0
    rho = prefill_utilization(service, slack, miss)
    rate = rho / service
    wait = rho * service / (2 * (1 - rho)) if rho < 1 else math.inf
    decode_s, batch = 0.0, 1.0
    for _ in range(20):  # decode time depends on how many decode together
        decode_s = max(output_tokens - 1, 0) / profile.decode_rate(max(1, round(batch)))
        batch = max(1.0, rate * decode_s)
    held = rate * (wait + service + decode_s)
    return float(min(profile.max_batch, max(1.0, held)))


class TokenPrice(BaseModel):
    """What one token costs on one model: its share of a replica's ``cost_per_hour``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    prompt: float = Field(description="Cost of one prompt token (its prefill time).")
    completion: float = Field(
        description="Cost of one completion token, decoded in the largest batch that meets "
        "the model's TPOT objective, each sequence taking its share of the replica."
    )

    def of(self, prompt_tokens: int, completion_tokens: int) -> float:
        """The cost of a request with this usage."""
        return prompt_tokens * self.prompt + completion_tokens * self.completion


def token_prices(
    profiles: ProfileSet, models: list[tuple[str, float, float]]
) -> dict[str, TokenPrice]:
    """The :class:`TokenPrice` of each ``(name, cost_per_hour, tpot_s)`` model."""
    prices = {}
    for name, cost_per_hour, tpot_s in models:
        profile = profiles.for_model(name)
        batch = profile.decode_batch(tpot_s)
        rate = cost_per_hour / 3600
        prices[name] = TokenPrice(
            prompt=rate / profile.prefill_tokens_per_s,
            completion=rate / (batch * profile.decode_rate(batch)),
        )
    return prices
