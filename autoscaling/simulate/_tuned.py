"""``ray-tuned``: Ray's own policy at the best point of a grid of its own knobs.

An oracle a real user does not have: every point replays the same trace,
and the best is chosen with hindsight. "Best" is the lowest cost among the
points whose size-aware attainment reaches a reference (the garden
policy's, by default), or the highest attainment when none does. The grid
covers the knobs a Ray user has: the upscale and downscale delays, and the
per-replica target (as a multiple of the capacity at the SLO that every
policy is given).
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from typing import Any

from autoscaling.profile import ProfileSet
from autoscaling.simulate._controller import RayKnobs
from autoscaling.simulate._trace import Request
from cluster.config import GardenConfig

__all__ = ["GRID", "best_point", "tune_ray"]

#: Ray's delays, in seconds (its defaults are 30 and 600), and target multiples.
UPSCALE_DELAYS_S = (0.0, 15.0, 30.0, 60.0)
DOWNSCALE_DELAYS_S = (60.0, 180.0, 300.0, 600.0, 900.0)
TARGET_SCALES = (0.5, 0.75, 1.0, 1.5, 2.0)
GRID: tuple[RayKnobs, ...] = tuple(
    RayKnobs(up, down, scale)
    for up, down, scale in itertools.product(UPSCALE_DELAYS_S, DOWNSCALE_DELAYS_S, TARGET_SCALES)
)

_RULE = "ttft_slo_attainment_sized"


def best_point(reports: Sequence[Mapping[str, Any]], reference: float) -> int:
    """Index of the best report: cheapest reaching ``reference``, else the highest attainment."""
    if not reports:
        raise ValueError("no grid point to choose from")
    reaching = [i for i, r in enumerate(reports) if r[_RULE] >= reference]
    if reaching:
        return min(reaching, key=lambda i: (reports[i]["cost_total"], -reports[i][_RULE]))
    return max(range(len(reports)), key=lambda i: (reports[i][_RULE], -reports[i]["cost_total"]))


def tune_ray(
    requests: Sequence[Request],
    garden: GardenConfig,
    profiles: ProfileSet | None,
    reference: float | None,
    grid: Sequence[RayKnobs] = GRID,
    **common: Any,
) -> dict[str, Any]:
    """The ``ray-tuned`` report: ``ray-default`` replayed at every ``grid`` point, best kept."""
    from autoscaling.simulate._run import simulate

    if reference is None:
        reference = simulate(requests, garden, profiles, policy="garden", **common)[_RULE]
    reports = [
        simulate(requests, garden, profiles, policy="ray-default", knobs=k, **common) for k in grid
    ]
    best = dict(reports[best_point(reports, reference)])
    best["policy"] = "ray-tuned"
    best["tuning"] = {
        "reference_attainment_sized": reference,
        "points": len(grid),
        "reached": sum(r[_RULE] >= reference for r in reports),
        "grid": [
            {**r["knobs"], "ttft_slo_attainment_sized": r[_RULE], "cost_total": r["cost_total"]}
            for r in reports
        ],
    }
    return best
