"""Autoscaling simulator: replay a request trace through a simulated garden.

Each model's policy is called the way Ray Serve's controller calls it (same
``AutoscalingContext``, look-back averaging and wrapper), while requests are
routed by the router's own ``decide()`` and served by a profile-driven model
of continuous batching. ``simulate`` returns SLO attainment, latency, cost
and scaling figures for one policy: ``garden``, ``ray-default``,
``ray-tuned`` or ``static-peak``; ``compare_policies`` runs them all.

Example::

    from autoscaling.simulate import read_trace, simulate

    report = simulate(read_trace("trace.csv", "azure"), policy="garden", seed=0)
    report["ttft_slo_attainment"], report["cost_total"]
"""

from autoscaling.profile import (
    Profile,
    ProfileError,
    ProfileSet,
    capacity_at_slo,
    load_profiles,
)
from autoscaling.simulate._compare import compare as compare_policies
from autoscaling.simulate._controller import POLICIES, PolicyName, RayKnobs
from autoscaling.simulate._mix import default_mix, parse_mix
from autoscaling.simulate._plot import plot_comparison, plot_replay
from autoscaling.simulate._run import (
    REPLICA_ROUTERS,
    ReplicaRouter,
    TargetsFrom,
    simulate,
    with_bounds,
)
from autoscaling.simulate._trace import FORMATS, Request, TraceError, TraceFormat, read_trace

__all__ = [
    "FORMATS",
    "POLICIES",
    "REPLICA_ROUTERS",
    "PolicyName",
    "Profile",
    "ProfileError",
    "ProfileSet",
    "RayKnobs",
    "ReplicaRouter",
    "Request",
    "TargetsFrom",
    "TraceError",
    "TraceFormat",
    "capacity_at_slo",
    "compare_policies",
    "default_mix",
    "load_profiles",
    "parse_mix",
    "plot_comparison",
    "plot_replay",
    "read_trace",
    "simulate",
    "with_bounds",
]
