"""The garden config: one strict pydantic tree loaded from ``garden.yaml``.

The same tree feeds ``garden up``, the Serve application builder and (later)
the Helm values, so every field must do something. Unknown keys are errors;
every error names its key path and the bad value, and every field carries a
``description`` so that ``garden config schema`` documents itself.

The schema lives in ``cluster.config._schema`` and loading in ``cluster.config._loading``;
this module is their public surface.
"""

from cluster.config._auth_spec import (
    UNNAMED_KEY,
    ApiKeySpec,
    AuthSpec,
    KeyLimitsSpec,
    QuotaStoreSpec,
)
from cluster.config._loading import (
    DEFAULT_CONFIG_NAME,
    default_config_text,
    load_config,
    parse_config,
    read_yaml_file,
)
from cluster.config._lora_spec import ADAPTER_ID, AdapterSpec, LoraSpec
from cluster.config._router_spec import (
    ClassifierSpec,
    CooldownSpec,
    RequestLimitsSpec,
    TelemetrySpec,
    VirtualModelSpec,
)
from cluster.config._schema import (
    DEFAULT_KV_TARGET,
    DEFAULT_STREAM_BATCHING_INTERVAL_MS,
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
    "DEFAULT_KV_TARGET",
    "DEFAULT_STREAM_BATCHING_INTERVAL_MS",
    "UNNAMED_KEY",
    "AdapterSpec",
    "ApiKeySpec",
    "AuthSpec",
    "AutoscalingSpec",
    "BudgetSpec",
    "ClassifierSpec",
    "CooldownSpec",
    "GardenConfig",
    "KeyLimitsSpec",
    "LimitsSpec",
    "LoraSpec",
    "ModelAutoscalingSpec",
    "ModelSpec",
    "QuotaStoreSpec",
    "RequestLimitsSpec",
    "ResourceSpec",
    "RouterSpec",
    "SLOSpec",
    "TelemetrySpec",
    "TinyModelSpec",
    "VirtualModelSpec",
    "default_config_text",
    "load_config",
    "parse_config",
    "read_yaml_file",
]
