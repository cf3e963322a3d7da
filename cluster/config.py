"""The garden config: one strict pydantic tree loaded from ``garden.yaml``.

The same tree feeds ``garden up``, the Serve application builder and (later)
the Helm values, so every field must do something. Unknown keys are errors;
every error names its key path and the bad value, and every field carries a
``description`` so that ``garden config schema`` documents itself.

The schema lives in ``cluster._schema`` and loading in ``cluster._loading``;
this module is their public surface.
"""

from cluster._loading import DEFAULT_CONFIG_NAME, default_config_text, load_config, parse_config
from cluster._lora_spec import ADAPTER_ID, AdapterSpec, LoraSpec
from cluster._router_spec import AuthSpec, ClassifierSpec, TelemetrySpec, VirtualModelSpec
from cluster._schema import (
    AutoscalingSpec,
    BudgetSpec,
    GardenConfig,
    LimitsSpec,
    ModelAutoscalingSpec,
    ModelSpec,
    ResourceSpec,
    RouterSpec,
    SLOSpec,
    TinyModelSpec,
)

__all__ = [
    "ADAPTER_ID",
    "DEFAULT_CONFIG_NAME",
    "AdapterSpec",
    "AuthSpec",
    "AutoscalingSpec",
    "BudgetSpec",
    "ClassifierSpec",
    "GardenConfig",
    "LimitsSpec",
    "LoraSpec",
    "ModelAutoscalingSpec",
    "ModelSpec",
    "ResourceSpec",
    "RouterSpec",
    "SLOSpec",
    "TelemetrySpec",
    "TinyModelSpec",
    "VirtualModelSpec",
    "default_config_text",
    "load_config",
    "parse_config",
]
