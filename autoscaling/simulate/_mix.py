"""The domain mix: which domain each replayed request belongs to (seeded, pure).

Traces carry sizes and times but no topic, so each request is given a
domain drawn from a weighted mix. The default is uniform over the garden's
routed domains (its specialists' and their adapters') plus ``general``.
"""

from __future__ import annotations

import bisect
import itertools
import random
from collections.abc import Mapping, Sequence

from cluster.config import GardenConfig
from router.policy import GENERAL_DOMAIN

__all__ = ["assign_domains", "default_mix", "parse_mix", "validate_mix"]


def default_mix(garden: GardenConfig) -> dict[str, float]:
    """Equal weight for every routed domain (specialists' and adapters') and ``general``."""
    domains = [*garden.domain_owners(), GENERAL_DOMAIN]
    return dict.fromkeys(domains, 1.0)


def validate_mix(mix: Mapping[str, float], garden: GardenConfig) -> dict[str, float]:
    """``mix`` checked against the garden: known domains, weights >= 0, some weight > 0."""
    known = {*garden.domain_owners(), GENERAL_DOMAIN}
    unknown = sorted(set(mix) - known)
    if unknown:
        raise ValueError(f"domain mix names unknown domains {unknown}; known: {sorted(known)}")
    bad = {d: w for d, w in mix.items() if not w >= 0}
    if bad:
        raise ValueError(f"domain mix weights must be >= 0, got {bad}")
    if not any(w > 0 for w in mix.values()):
        raise ValueError(f"domain mix needs a positive weight, got {dict(mix)}")
    return {d: float(w) for d, w in mix.items()}


def parse_mix(text: str) -> dict[str, float]:
    """``"law=2,code=1"`` as a mapping; ValueError naming the bad item."""
    mix: dict[str, float] = {}
    for item in filter(None, (part.strip() for part in text.split(","))):
        domain, sep, weight = item.partition("=")
        try:
            if not sep or not domain.strip():
                raise ValueError
            mix[domain.strip()] = float(weight)
        except ValueError:
            raise ValueError(f"mix item {item!r} is not DOMAIN=WEIGHT") from None
    return mix


def assign_domains(n: int, mix: Mapping[str, float], seed: int) -> list[str]:
    """``n`` domains drawn from ``mix``; the same seed gives the same list."""
    domains: Sequence[str] = sorted(mix)  # sorted: independent of the mapping's order
    cumulative = list(itertools.accumulate(mix[d] for d in domains))
    total = cumulative[-1]
    rng = random.Random(seed)
    return [domains[bisect.bisect_right(cumulative, rng.random() * total)] for _ in range(n)]
