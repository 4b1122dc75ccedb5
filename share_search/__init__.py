"""share-search: search how tasks should share a network.

Sample sharing architectures (branching trees, cross-stitch, progressive networks) with
Optuna, train them as parallel Ray Tune trials, rank them per task, export the winners.

From Python::

    import share_search
    run = share_search.run("search_spaces/quick.yaml", out="runs/q", trials=8)
    run.leaderboard()                 # a pandas DataFrame
    model = share_search.load_model("runs/q/export/rank-1")

Every public name is imported when first used (PEP 562), so ``import share_search`` loads
neither torch nor Ray: a command or script pays for what it touches.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from .errors import CheckpointError, DataError, RunError, ShareSearchError, SpecError

__version__ = "0.1.0"

# public name -> the module that defines it, imported on first access
_LAZY = {
    "FAMILIES": ".arch",
    "ArchConfig": ".arch",
    "build_model": ".arch",
    "config_from_dict": ".arch",
    "load_model": ".export",
    "Spec": ".spec",
    "load_spec": ".spec",
    "parse_spec": ".spec",
    "Run": ".run_folder",
    "open_run": ".run_folder",
    "run": ".run_folder",
}

__all__ = [
    "FAMILIES",
    "ArchConfig",
    "CheckpointError",
    "DataError",
    "Run",
    "RunError",
    "ShareSearchError",
    "Spec",
    "SpecError",
    "build_model",
    "config_from_dict",
    "load_model",
    "load_spec",
    "open_run",
    "parse_spec",
    "run",
]

if TYPE_CHECKING:  # what type checkers and IDEs see; at run time __getattr__ imports these
    from .arch import FAMILIES, ArchConfig, build_model, config_from_dict
    from .export import load_model
    from .run_folder import Run, open_run, run
    from .spec import Spec, load_spec, parse_spec


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module, __name__), name)
    globals()[name] = value  # later accesses skip this function
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
