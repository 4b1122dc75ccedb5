"""Each built-in family's search options (the spec's ``families.<name>`` section).

Pydantic models only, no torch: the spec validates ``families`` through the family
registry, which reads these without importing the models.
"""

from __future__ import annotations

from typing import Annotated, Optional

from pydantic import BaseModel, ConfigDict, PlainSerializer, field_validator

from .model import Param, param_to_yaml, searchable

LATERALS = ("linear", "adapter")


class FamilyOptions(BaseModel):
    """A family's search options from the spec's ``families.<name>`` section."""

    model_config = ConfigDict(frozen=True, extra="forbid")


class TreeOptions(FamilyOptions):
    """Search options of the ``tree`` family.

    ``first_stage_shared`` (default true) keeps stage 0 shared by all tasks: the
    independent networks are trained anyway as Δm baselines, and low-level features are
    the ones most worth sharing (Vandenhende et al. 2020). Set it to false to search
    trees that split at stage 0 too, independent networks included.
    """

    first_stage_shared: bool = True


_Searched = PlainSerializer(param_to_yaml)  # dump as the YAML the user wrote, so specs round-trip


class CrossStitchOptions(FamilyOptions):
    """``families.cross_stitch``: where units may go, how α starts and how fast it learns."""

    model_config = ConfigDict(frozen=True, extra="forbid", arbitrary_types_allowed=True)
    stages: Optional[list[int]] = None
    alpha_self: Annotated[Param, searchable("float", minimum=0.0), _Searched] = Param("range", low=0.85, high=0.95)
    alpha_lr_mult: Annotated[Param, searchable("float", positive=True), _Searched] = Param(
        "range", low=1.0, high=100.0, log=True
    )

    @field_validator("alpha_self")
    @classmethod
    def _at_most_one(cls, v: Param) -> Param:
        top = v.high if v.kind == "range" else max(v.grid_values())
        if top > 1:
            raise ValueError(f"must be a mixing weight in [0, 1], got {param_to_yaml(v)!r}")
        return v


class ProgressiveOptions(FamilyOptions):
    """``families.progressive``: a fixed ``order`` (else all are searched), eligible ``stages``, ``lateral`` kinds."""

    model_config = ConfigDict(frozen=True, extra="forbid", arbitrary_types_allowed=True)
    order: Optional[list[str]] = None
    stages: Optional[list[int]] = None
    lateral: Annotated[Param, searchable("str", allowed=LATERALS), PlainSerializer(param_to_yaml)] = Param(
        "choice", choices=LATERALS
    )
