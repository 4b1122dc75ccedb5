"""share-search: search how tasks should share a network.

Sample sharing architectures (branching trees, cross-stitch, progressive networks) with
Optuna, train them as parallel Ray Tune trials, rank them per task, export the winners.

Names that need torch (``build_model``, ``load_model``, ...) are imported when first used
(PEP 562), so ``import share_search`` and the spec stay light.
"""

from importlib import import_module

from .errors import CheckpointError, DataError, RunError, ShareSearchError, SpecError
from .registry import (
    FAMILIES,
    create_backbone,
    create_sampler,
    create_weighting,
    get_family,
    get_metric,
    list_backbones,
    list_families,
    list_metrics,
    list_samplers,
    list_weightings,
    register_backbone,
    register_family,
    register_metric,
    register_sampler,
    register_weighting,
)
from .spec import Spec, load_spec, parse_spec

__version__ = "0.1.0"

_LAZY = {
    "ArchConfig": "share_search.arch",
    "Family": "share_search.arch",
    "FamilyOptions": "share_search.family_options",
    "build_model": "share_search.arch",
    "config_from_dict": "share_search.arch",
    "load_model": "share_search.export",
    "Weighting": "share_search.weighting",
}


def __getattr__(name: str):
    if name in _LAZY:
        return getattr(import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'share_search' has no attribute {name!r}")


__all__ = [
    "FAMILIES",
    "ArchConfig",
    "CheckpointError",
    "DataError",
    "Family",
    "FamilyOptions",
    "RunError",
    "ShareSearchError",
    "Spec",
    "SpecError",
    "Weighting",
    "build_model",
    "config_from_dict",
    "create_backbone",
    "create_sampler",
    "create_weighting",
    "get_family",
    "get_metric",
    "list_backbones",
    "list_families",
    "list_metrics",
    "list_samplers",
    "list_weightings",
    "load_model",
    "load_spec",
    "parse_spec",
    "register_backbone",
    "register_family",
    "register_metric",
    "register_sampler",
    "register_weighting",
]
