"""Building blocks shared by every config node: the strict base and name types."""

from __future__ import annotations

import re
from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StringConstraints

__all__ = ["CustomResources", "Domain", "Name", "Strict"]

Name = Annotated[
    str,
    StringConstraints(pattern=r"^[a-z0-9]([a-z0-9-]{0,38}[a-z0-9])?$"),
    Field(
        description="Lowercase DNS label of at most 40 characters (used as model id, "
        "Serve deployment name and Kubernetes label)."
    ),
]
Domain = Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_]{0,31}$")]

#: Resources Ray defines itself, which custom resources may not name.
_RAY_RESOURCES = frozenset({"CPU", "GPU", "TPU", "memory", "object_store_memory"})
_RAY_PREFIXES = ("node:", "accelerator_type:")
_RESOURCE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,62}")


def _custom_names(value: dict[str, float]) -> dict[str, float]:
    for name in value:
        if name in _RAY_RESOURCES or name.startswith(_RAY_PREFIXES):
            raise ValueError(
                f"custom resource {name!r} is one of Ray's own; use cpus, gpus or "
                "accelerator_type for those"
            )
        if not _RESOURCE_NAME.fullmatch(name):
            raise ValueError(
                f"custom resource name {name!r} must be 1-63 letters, digits, '-', '_' or '.'"
            )
    return value


#: Ray custom resources (``ray start --resources``) a replica asks for: name -> amount.
CustomResources = Annotated[
    dict[str, Annotated[float, Field(gt=0, le=1_000_000)]], AfterValidator(_custom_names)
]


class Strict(BaseModel):
    """Base of every config node: unknown keys are errors, values are immutable."""

    model_config = ConfigDict(
        extra="forbid",
        frozen=True,
        validate_default=True,
        use_attribute_docstrings=False,
    )
