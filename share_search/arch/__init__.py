"""Sharing families built from a backbone's stages: ``tree``, ``cross_stitch``, ``progressive``.

Each module holds one family; ``registry.FAMILIES`` imports it when the family is first used.
"""

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
