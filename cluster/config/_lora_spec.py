"""LoRA adapters served on a model's checkpoint: Ray Serve LLM's ``lora_config``.

A model with ``lora`` serves, besides itself, every adapter stored under
``dynamic_lora_loading_path``: a request for ``<model>:<adapter>`` goes to
that model's replicas, which fetch ``<path>/<adapter>`` (a PEFT directory with
``adapter_config.json``) on first use and keep up to
``max_num_adapters_per_replica`` of them (Ray Serve's model multiplexing).
The engine arguments vLLM needs for it come from here too.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import Field, StringConstraints, model_validator

from cluster.config._types import Domain, Strict

__all__ = ["ADAPTER_ID", "LORA_ENGINE_KEYS", "AdapterSpec", "LoraSpec"]

#: An adapter's name in ``<model>:<adapter>``: a path segment under the
#: loading path (no '/', so a client cannot reach outside it).
ADAPTER_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$")

#: Engine arguments that ``lora`` sets; ``engine`` may not set them as well.
LORA_ENGINE_KEYS = frozenset({"enable_lora", "max_lora_rank", "max_loras"})


class AdapterSpec(Strict):
    """An adapter that owns domains: ``auto`` routes their requests to ``<model>:<adapter>``.

    Its exemplars teach the router its domains, as a specialist's do; the
    adapter is served like any other of the model's (fetched from
    ``dynamic_lora_loading_path/<name>`` on first use).
    """

    name: str = Field(
        pattern=ADAPTER_ID.pattern,
        description="The adapter's folder under dynamic_lora_loading_path, and its id after "
        "'<model>:'.",
    )
    domains: list[Domain] = Field(
        min_length=1, description="Domains this adapter owns (router labels)."
    )
    description: str = Field(
        "",
        max_length=2000,
        description="What the adapter is good at, in words (the router uses it).",
    )
    exemplars: list[Annotated[str, StringConstraints(min_length=1)]] = Field(
        default_factory=list,
        description="Example prompts of the adapter's domains (the router fits on them).",
    )
    exemplars_file: str | None = Field(
        None,
        min_length=1,
        description="File of more example prompts (JSON Lines of {text, source}, or one per "
        "line), relative to the config file.",
    )

    @model_validator(mode="after")
    def _taught(self) -> AdapterSpec:
        if not self.exemplars and self.exemplars_file is None and not self.description:
            raise ValueError(
                f"adapter {self.name!r} owns {self.domains} but gives the router nothing to "
                "learn them from: set description, exemplars or exemplars_file"
            )
        if len(set(self.domains)) != len(self.domains):
            raise ValueError(f"duplicate domains in {self.domains}")
        return self


class LoraSpec(Strict):
    """LoRA adapters of one model, loaded on demand from cloud storage."""

    dynamic_lora_loading_path: str = Field(
        pattern=r"^(s3|gs|abfss|azure)://[^\s]+$",
        description="Cloud folder holding one sub-folder per adapter (PEFT files), e.g. "
        "s3://bucket/adapters/law. Ray Serve LLM reads only S3, GCS and Azure here.",
    )
    max_num_adapters_per_replica: int = Field(
        16, ge=1, le=1024, description="Adapters one replica keeps loaded (least recent evicted)."
    )
    max_lora_rank: Literal[1, 8, 16, 32, 64, 128, 256, 320, 512] = Field(
        16, description="Largest adapter rank served (vLLM's max_lora_rank)."
    )
    max_loras: int = Field(
        4, ge=1, le=256, description="Different adapters in one engine batch (vLLM's max_loras)."
    )
    download_timeout_s: float | None = Field(
        30, gt=0, description="Seconds to fetch one adapter; null waits without limit."
    )
    max_download_tries: int = Field(3, ge=1, le=20, description="Attempts to fetch an adapter.")
    adapters: list[AdapterSpec] = Field(
        default_factory=list,
        description="Adapters that own domains, for the router's 'auto'. Others are still "
        "served when named.",
    )

    @model_validator(mode="after")
    def _batch_within_resident(self) -> LoraSpec:
        names = [a.name for a in self.adapters]
        repeated = sorted({n for n in names if names.count(n) > 1})
        if repeated:
            raise ValueError(f"adapter names must be unique, repeated: {repeated}")
        if self.max_loras > self.max_num_adapters_per_replica:
            raise ValueError(
                f"max_loras={self.max_loras} is above max_num_adapters_per_replica="
                f"{self.max_num_adapters_per_replica}: a batch cannot hold more adapters "
                "than the replica keeps"
            )
        return self

    def lora_config(self) -> dict[str, Any]:
        """``LLMConfig.lora_config``."""
        return self.model_dump(
            include={
                "dynamic_lora_loading_path",
                "max_num_adapters_per_replica",
                "download_timeout_s",
                "max_download_tries",
            }
        )

    def engine_kwargs(self) -> dict[str, Any]:
        """The vLLM engine arguments adapters need."""
        return {
            "enable_lora": True,
            "max_lora_rank": self.max_lora_rank,
            "max_loras": self.max_loras,
        }
