"""The policies of the garden's virtual models (``auto`` and friends)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from cluster.config import GardenConfig, ModelSpec
from deployments.tiny import model_path
from router.policy import Capabilities, PolicyConfig

__all__ = ["capabilities_of", "model_capabilities", "virtual_policies"]

#: vLLM's default ``max_logprobs``.
_VLLM_MAX_LOGPROBS = 20
#: ``max_logprobs`` of an engine that sets none (-1).
_NO_CAP = 1 << 30


def _checkpoint_config(garden: GardenConfig, spec: ModelSpec) -> Mapping[str, Any] | None:
    """The checkpoint's ``config.json`` where it is a local directory (else ``None``)."""
    path = model_path(garden, spec) / "config.json"
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def capabilities_of(spec: ModelSpec, checkpoint: Mapping[str, Any] | None) -> Capabilities:
    """What ``spec``'s engine serves, from its engine args and checkpoint config.

    * tools: vLLM's ``enable_auto_tool_choice`` with a ``tool_call_parser``
      (Ray Serve LLM passes both from the engine args to vLLM's frontend);
      forced calls (``required``, a named function) need the parser only;
    * images: ``limit_mm_per_prompt`` allows images, or, unset, the
      checkpoint has a vision tower (``vision_config``); a checkpoint that
      cannot be read (a hub id) counts as able, and the engine decides;
    * logprobs: ``max_logprobs`` (vLLM's default 20);
    * context: ``max_model_len``, else the checkpoint's
      ``max_position_embeddings`` when it has no rope scaling, else not known.
    """
    engine = spec.engine
    tools = bool(engine.get("enable_auto_tool_choice")) and bool(engine.get("tool_call_parser"))
    limits = engine.get("limit_mm_per_prompt")
    if isinstance(limits, Mapping) and "image" in limits:
        image = limits["image"]  # a count, or vLLM's {"count": n, ...} form
        count = image.get("count", 1) if isinstance(image, Mapping) else image
        images = int(count) > 0
    else:
        images = checkpoint is None or "vision_config" in checkpoint
    length = engine.get("max_model_len")
    if length is None and checkpoint is not None and not checkpoint.get("rope_scaling"):
        # With rope scaling vLLM derives a longer context than this: leave it unknown.
        length = checkpoint.get("max_position_embeddings")
    logprobs = engine.get("max_logprobs", _VLLM_MAX_LOGPROBS)
    return Capabilities(
        tools=tools,
        tool_parser=bool(engine.get("tool_call_parser")),
        images=images,
        # vLLM reads -1 as "no cap" (max_logprobs) and "derive it" (max_model_len).
        max_logprobs=int(logprobs) if int(logprobs) >= 0 else _NO_CAP,
        max_model_len=int(length) if isinstance(length, int) and length > 0 else None,
    )


def model_capabilities(garden: GardenConfig) -> dict[str, Capabilities]:
    """:func:`capabilities_of` every model, and of each routed adapter (its base model's)."""
    capabilities = {
        m.name: capabilities_of(m, _checkpoint_config(garden, m)) for m in garden.models
    }
    for owner in garden.domain_owners().values():
        capabilities.setdefault(owner, capabilities[owner.partition(":")[0]])
    return capabilities


def virtual_policies(garden: GardenConfig) -> dict[str, PolicyConfig]:
    """One :class:`PolicyConfig` per ``router.virtual_models`` entry, by model id.

    Each virtual model inherits the router's thresholds and overrides them
    with its own; ``fallback: false`` becomes ``spill=False``. Every policy
    knows each model's :func:`capabilities_of`.
    """
    owners = garden.domain_owners()
    capabilities = model_capabilities(garden)
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
            capabilities=capabilities,
        )
    return policies
