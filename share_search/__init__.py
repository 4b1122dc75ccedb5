"""share-search: search how tasks should share a network.

Sample sharing architectures (branching trees, cross-stitch, progressive networks) with
Optuna, train them as parallel Ray Tune trials, rank them per task, export the winners.
"""

from .arch import FAMILIES, ArchConfig, build_model, config_from_dict
from .errors import CheckpointError, DataError, RunError, ShareSearchError, SpecError
from .export import load_model
from .spec import Spec, load_spec, parse_spec

__version__ = "0.1.0"

__all__ = [
    "FAMILIES",
    "ArchConfig",
    "CheckpointError",
    "DataError",
    "RunError",
    "ShareSearchError",
    "Spec",
    "SpecError",
    "build_model",
    "config_from_dict",
    "load_model",
    "load_spec",
    "parse_spec",
]
