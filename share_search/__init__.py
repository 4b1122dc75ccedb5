"""share-search: search how tasks should share a network.

Sample sharing architectures (branching trees, cross-stitch, progressive networks) with
Optuna, train them as parallel Ray Tune trials, rank them per task, export the winners.

From Python::

    import share_search
    run = share_search.run("search_spaces/quick.yaml", out="runs/q", trials=8)
    run.leaderboard()                 # a pandas DataFrame
    model = share_search.load_model("runs/q/export/rank-1")

Every name that needs torch, Optuna or Ray is imported when first used (PEP 562), so
``import share_search`` loads none of them: a command or script pays for what it touches.
The registries are torch-free and imported at once, so a plugin can register into them.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from .errors import CheckpointError, DataError, RunError, ShareSearchError, SpecError
from .spec.registry import (
    FAMILIES,
    create_optimizer,
    create_sampler,
    create_weighting,
    get_family,
    get_family_space,
    get_metric,
    list_backbones,
    list_families,
    list_family_spaces,
    list_metrics,
    list_optimizers,
    list_samplers,
    list_weightings,
    register_backbone,
    register_family,
    register_family_space,
    register_metric,
    register_optimizer,
    register_sampler,
    register_weighting,
)

__version__ = "0.1.0"

# public name -> the module that defines it, imported on first access
_LAZY = {
    "ArchConfig": ".arch",
    "Family": ".arch",
    "build_model": ".arch",
    "config_from_dict": ".arch",
    "create_backbone": ".arch.backbones",
    "FamilyOptions": ".spec.family_options",
    "FamilySpace": ".space",
    "Weighting": ".train.weighting",
    "load_model": ".runs.export",
    "Spec": ".spec.model",
    "load_spec": ".spec.model",
    "parse_spec": ".spec.model",
    "Run": ".runs.run_folder",
    "open_run": ".runs.run_folder",
    "run": ".engine.runner",
}

__all__ = sorted(
    [
        "CheckpointError",
        "DataError",
        "RunError",
        "ShareSearchError",
        "SpecError",
        "FAMILIES",
        "create_optimizer",
        "create_sampler",
        "create_weighting",
        "get_family",
        "get_family_space",
        "get_metric",
        "list_backbones",
        "list_families",
        "list_family_spaces",
        "list_metrics",
        "list_optimizers",
        "list_samplers",
        "list_weightings",
        "register_backbone",
        "register_family",
        "register_family_space",
        "register_metric",
        "register_optimizer",
        "register_sampler",
        "register_weighting",
        *_LAZY,
    ]
)

if TYPE_CHECKING:  # what type checkers and IDEs see; at run time __getattr__ imports these
    from .arch import ArchConfig, Family, build_model, config_from_dict
    from .arch.backbones import create_backbone
    from .runs.export import load_model
    from .space import FamilySpace
    from .spec.family_options import FamilyOptions
    from .engine.runner import run
    from .runs.run_folder import Run, open_run
    from .spec.model import Spec, load_spec, parse_spec
    from .train.weighting import Weighting


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module, __name__), name)
    globals()[name] = value  # later accesses skip this function
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
