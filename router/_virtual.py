"""The policies of the garden's virtual models (``auto`` and friends)."""

from __future__ import annotations

from cluster.config import GardenConfig
from router.policy import PolicyConfig

__all__ = ["virtual_policies"]


def virtual_policies(garden: GardenConfig) -> dict[str, PolicyConfig]:
    """One :class:`PolicyConfig` per ``router.virtual_models`` entry, by model id.

    Each virtual model inherits the router's thresholds and overrides them
    with its own; ``fallback: false`` becomes ``spill=False``.
    """
    owners = {d: m.name for m in garden.specialists for d in m.domains}
    router = garden.router
    policies: dict[str, PolicyConfig] = {}
    for virtual in router.virtual_models:
        default = virtual.default_threshold
        policies[virtual.name] = PolicyConfig(
            generalist=garden.generalist.name,
            owners=owners,
            default_threshold=router.default_threshold if default is None else default,
            thresholds={**router.thresholds, **virtual.thresholds},
            spill=virtual.fallback,
        )
    return policies
