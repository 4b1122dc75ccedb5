"""Sharing families built from a backbone's stages: ``tree``, ``cross_stitch``, ``progressive``."""

from ._base import (
    FAMILIES,
    ArchConfig,
    Family,
    FamilyOptions,
    MultiTaskModel,
    Phase,
    build_model,
    config_from_dict,
    get_family,
    register_family,
)
from ._cost import count_macs, count_parameters
from ._stacked import LoopedStage, StackedStage, stack_stage, stacked, unstacked

# Importing the family modules registers them.
from . import tree as _tree  # noqa: E402,F401
from . import cross_stitch as _cross_stitch  # noqa: E402,F401
from . import progressive as _progressive  # noqa: E402,F401

__all__ = [
    "FAMILIES",
    "ArchConfig",
    "Family",
    "FamilyOptions",
    "LoopedStage",
    "MultiTaskModel",
    "Phase",
    "StackedStage",
    "build_model",
    "config_from_dict",
    "count_macs",
    "count_parameters",
    "get_family",
    "register_family",
    "stack_stage",
    "stacked",
    "unstacked",
]
