"""``garden simulate --compare``: every policy on one trace, side by side.

The garden policy is replayed twice, with its specialists at
``min_replicas`` 1 and at 0 (scale to zero with the generalist's cover),
and the better of the two is the garden's entry; Ray's policy runs as a
Ray user keeps it, at 1, since the router diverts a Ray-scaled specialist's
traffic away at zero and Ray then never sees demand to bring it back.
``ray-tuned`` is tuned against the garden entry's attainment. With a
budget, ``static-partition`` (Ray's policy within a static split of the
budget, in proportion to each model's peak) is replayed too. Every policy
is scored under both SLO rules; the verdicts use the size-aware one.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from autoscaling.profile import ProfileSet
from autoscaling.simulate._run import simulate, with_bounds
from autoscaling.simulate._trace import Request
from cluster.config import GardenConfig

__all__ = ["compare", "verdicts"]

_RULE = "ttft_slo_attainment_sized"
#: Attainment the garden may give up against a baseline and still count as matching it.
TOLERANCE = 0.002


def _better(a: Mapping[str, Any], b: Mapping[str, Any], reference: Mapping[str, Any]) -> bool:
    """Is garden variant ``a`` the better entry than ``b`` against ``reference`` (Ray's)?

    Among variants that match the reference's attainment the cheaper wins;
    a matching variant beats one that does not; otherwise the higher
    attainment wins.
    """
    floor = reference[_RULE] - TOLERANCE
    a_ok, b_ok = a[_RULE] >= floor, b[_RULE] >= floor
    if a_ok and b_ok:
        return bool(a["cost_total"] < b["cost_total"])
    if a_ok != b_ok:
        return bool(a_ok)
    return bool(a[_RULE] > b[_RULE])


def verdicts(
    garden: Mapping[str, Any], ray: Mapping[str, Any], tuned: Mapping[str, Any]
) -> dict[str, Any]:
    """The issue's targets as ratios and booleans (size-aware attainment throughout)."""
    cost_ratio = garden["cost_total"] / ray["cost_total"] if ray["cost_total"] else None
    gain = garden[_RULE] - ray[_RULE]
    share = garden["specialist_share"], ray["specialist_share"]
    tuned_ratio = garden["cost_total"] / tuned["cost_total"] if tuned["cost_total"] else None
    never_worse = gain >= -TOLERANCE and cost_ratio is not None and cost_ratio <= 1.02
    clearly = (cost_ratio is not None and cost_ratio <= 0.80 and gain >= -TOLERANCE) or (
        gain >= 0.03 and cost_ratio is not None and cost_ratio <= 1.0
    )
    matches = garden[_RULE] >= tuned[_RULE] - TOLERANCE
    vs_tuned = (matches and tuned_ratio is not None and tuned_ratio <= 1.05) or (
        garden[_RULE] > tuned[_RULE] + TOLERANCE
    )
    return {
        "cost_vs_ray_default": None if cost_ratio is None else round(cost_ratio, 4),
        "attainment_gain_vs_ray_default": round(gain, 4),
        "cost_vs_ray_tuned": None if tuned_ratio is None else round(tuned_ratio, 4),
        "attainment_gain_vs_ray_tuned": round(garden[_RULE] - tuned[_RULE], 4),
        "specialist_share_vs_ray_default": round(share[0] / share[1], 4)
        if share[0] is not None and share[1]
        else None,
        "never_worse": bool(never_worse),
        "clearly_better": bool(clearly),
        "matches_ray_tuned": bool(vs_tuned),
        "specialist_share_kept": share[0] is None
        or share[1] is None
        or share[0] >= 0.95 * share[1],
    }


def compare(
    requests: Sequence[Request],
    garden: GardenConfig,
    profiles: ProfileSet | None = None,
    **common: Any,
) -> dict[str, Any]:
    """Every policy's report (without its series) on one trace, and the verdicts.

    ``common`` goes to every :func:`~autoscaling.simulate.simulate` call
    (seed, mix, budget, bounds overrides...).
    """
    min_replicas = common.pop("min_replicas", None)
    max_replicas = common.pop("max_replicas", None)
    base = with_bounds(garden, min_replicas, max_replicas)
    reports: dict[str, dict[str, Any]] = {}
    reports["ray-default"] = simulate(
        requests, with_bounds(base, 1), profiles, policy="ray-default", **common
    )
    at_one = simulate(requests, with_bounds(base, 1), profiles, policy="garden", **common)
    at_zero = simulate(requests, with_bounds(base, 0), profiles, policy="garden", **common)
    reports["garden@min1"], reports["garden@min0"] = at_one, at_zero
    chosen = "garden@min0" if _better(at_zero, at_one, reports["ray-default"]) else "garden@min1"
    reports["ray-tuned"] = simulate(
        requests,
        with_bounds(base, 1),
        profiles,
        policy="ray-tuned",
        tune_against=reports[chosen][_RULE],
        **common,
    )
    reports["static-peak"] = simulate(requests, base, profiles, policy="static-peak", **common)
    judged = verdicts(reports[chosen], reports["ray-default"], reports["ray-tuned"])
    if common.get("budget") is not None or garden.budget.max_cost_per_hour is not None:
        # What a Ray user under the same ceiling runs: Ray's policy within a
        # static split of it (only the garden entry is held to the budget).
        reports["static-partition"] = simulate(
            requests, with_bounds(base, 1), profiles, policy="static-partition", **common
        )
        judged["attainment_gain_vs_static_partition"] = round(
            reports[chosen][_RULE] - reports["static-partition"][_RULE], 4
        )
        judged["beats_static_partition"] = bool(
            reports[chosen][_RULE] > reports["static-partition"][_RULE]
        )
    series = {name: r.pop("series") for name, r in reports.items()}
    return {"garden": chosen, "policies": reports, "verdicts": judged, "series": series}
