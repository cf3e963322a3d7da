"""Building blocks shared by every config node: the strict base and name types."""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

__all__ = ["Domain", "Name", "Strict"]

Name = Annotated[
    str,
    StringConstraints(pattern=r"^[a-z0-9]([a-z0-9-]{0,38}[a-z0-9])?$"),
    Field(
        description="Lowercase DNS label of at most 40 characters (used as model id, "
        "Serve deployment name and Kubernetes label)."
    ),
]
Domain = Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_]{0,31}$")]


class Strict(BaseModel):
    """Base of every config node: unknown keys are errors, values are immutable."""

    model_config = ConfigDict(
        extra="forbid",
        frozen=True,
        validate_default=True,
        use_attribute_docstrings=False,
    )
