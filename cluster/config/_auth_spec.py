"""The router's API keys and their limits (``router.auth``).

Keys are named in the config; their secrets never are (the config travels
into Ray Serve's and Kubernetes' objects). A named key's secret is read from
an environment variable of the router (``secret_env``) or from a file named
after the key in ``keys_dir`` (a mounted Kubernetes Secret, re-read while the
router runs, so keys rotate without a restart).
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, StringConstraints, field_validator, model_validator

from cluster.config._types import Strict

__all__ = ["UNNAMED_KEY", "ApiKeySpec", "AuthSpec", "KeyLimitsSpec", "QuotaStoreSpec"]

_ENV_NAME = r"^[A-Za-z_][A-Za-z0-9_]*$"
EnvName = Annotated[str, StringConstraints(pattern=_ENV_NAME)]
KeyName = Annotated[
    str,
    StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$"),
    Field(description="Name of a key: its usage series and `garden keys usage` row."),
]

#: The one name the keys of ``api_keys_env`` share (their usage and limits).
UNNAMED_KEY = "default"


class KeyLimitsSpec(Strict):
    """Per-key limits, as LiteLLM's keys and OpenAI's rate limits have them. Unset: no limit."""

    requests_per_minute: int | None = Field(
        None,
        ge=1,
        le=1_000_000_000,
        description="Requests a key may start in any 60 s (a sliding window); more get 429.",
    )
    tokens_per_minute: int | None = Field(
        None,
        ge=1,
        le=1_000_000_000_000,
        description="Prompt plus completion tokens (from each answer's usage) a key may spend "
        "in any 60 s; a request arriving while the window is spent gets 429.",
    )
    max_concurrent: int | None = Field(
        None,
        ge=1,
        le=1_000_000,
        description="Requests of the key in flight at once across every router replica.",
    )
    models: list[Annotated[str, StringConstraints(min_length=1, max_length=128)]] | None = Field(
        None,
        description="Model ids the key may use (virtual models such as 'auto', served "
        "models, '<model>:<adapter>'); others answer 404 and /v1/models lists only these. "
        "Unset: every model.",
    )


class ApiKeySpec(KeyLimitsSpec):
    """One named API key."""

    name: KeyName
    secret_env: EnvName | None = Field(
        None,
        description="Environment variable of the router holding this key's secret (read at "
        "start). Unset: the secret is the file <router.auth.keys_dir>/<name>.",
    )


class QuotaStoreSpec(Strict):
    """Where the routers share quota counters, so N replicas never give N times a quota."""

    kind: Literal["ray", "redis"] = Field(
        "ray",
        description="'ray': a named Ray actor of the garden (the embedded garden; it lives as "
        "long as the cluster). 'redis': a Redis server beside the cluster (counters survive "
        "the cluster; several gardens may share one with distinct names).",
    )
    redis_url_env: EnvName = Field(
        "GARDEN_REDIS_URL",
        description="Environment variable of the router holding the Redis URL "
        "(redis://[:password@]host:port/db), for kind 'redis'.",
    )
    on_error: Literal["open", "closed"] = Field(
        "open",
        description="When the store cannot be reached: 'open' serves the request unmetered "
        "(and logs it); 'closed' refuses it with 503 quota_store_unavailable.",
    )
    timeout_ms: int = Field(
        500, ge=10, le=60_000, description="How long one store call may take before it fails."
    )


class AuthSpec(Strict):
    """API keys the router requires, as vLLM's ``--api-key`` and LiteLLM's keys do."""

    api_keys_env: EnvName | None = Field(
        None,
        description="Name of an environment variable holding comma-separated API keys. Set: "
        "every /v1/* request needs 'Authorization: Bearer <one of the keys>' (else 401), and "
        "the router refuses to start when the variable is unset or empty. These keys count "
        f"as one key named {UNNAMED_KEY!r} (router.auth.default_limits).",
    )
    keys_dir: str | None = Field(
        None,
        min_length=1,
        description="Directory of the router holding one file per named key without "
        "secret_env: the file's name is the key's name, its content the secret (a mounted "
        "Kubernetes Secret). Re-read every health check (10 s): keys added, rotated or "
        "removed there take effect without a restart.",
    )
    keys: list[ApiKeySpec] = Field(
        default_factory=list, description="Named keys, each with its own limits."
    )
    default_limits: KeyLimitsSpec = Field(
        default_factory=KeyLimitsSpec,
        description=f"Limits of the keys of api_keys_env (together, key {UNNAMED_KEY!r}) and "
        "of each key file in keys_dir that no entry of keys names.",
    )
    store: QuotaStoreSpec = Field(
        default_factory=QuotaStoreSpec, description="Where quota counters are shared."
    )

    @field_validator("keys")
    @classmethod
    def _unique_names(cls, value: list[ApiKeySpec]) -> list[ApiKeySpec]:
        names = [k.name for k in value]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"key names must be unique, repeated: {dupes}")
        if UNNAMED_KEY in names:
            raise ValueError(f"key name {UNNAMED_KEY!r} is reserved for the keys of api_keys_env")
        return value

    @model_validator(mode="after")
    def _secrets_have_a_source(self) -> AuthSpec:
        if self.keys_dir is None:
            lacking = [k.name for k in self.keys if k.secret_env is None]
            if lacking:
                raise ValueError(
                    f"keys {lacking} have no secret_env, and router.auth.keys_dir is not set: "
                    "give each a secret_env, or set keys_dir to where their secret files are"
                )
        return self

    @property
    def enabled(self) -> bool:
        """True when requests need a key."""
        return self.api_keys_env is not None or bool(self.keys) or self.keys_dir is not None

    def limits_of(self, name: str) -> KeyLimitsSpec:
        """The limits of key ``name`` (the default limits for the unnamed keys, or unknown ones)."""
        for key in self.keys:
            if key.name == name:
                return key
        return self.default_limits
