"""Datasets for multi-task search: built-in real data and user files or functions.

``load_data(spec.data, spec.seed)`` returns a ``Dataset`` with fixed train/val/test
splits and one array per label; tasks pick their labels by name. ``data.source`` is a
built-in name (``BUILTIN_SOURCES``), a ``.npz``/``.csv``/``.parquet`` path, one such file
per split, or ``module:function``. ``assemble_splits`` is the rule for official splits.
"""

from ._base import Dataset, LabelInfo, Split
from ._builtin import (
    ADULT_COLUMNS,
    BUILTIN_SOURCES,
    FASHION_FILES,
    FASHION_PACKAGE,
    FASHION_ROOT,
    MULTIMNIST_PAIRS,
    compose_pairs,
    multimnist_pairs,
    package_file,
)
from ._cache import CACHE_ENV, cache_dir
from ._load import load_data
from ._split import ONE_POOL, SPLITS, assemble_splits, split_indices

__all__ = [
    "ADULT_COLUMNS",
    "BUILTIN_SOURCES",
    "CACHE_ENV",
    "FASHION_FILES",
    "FASHION_PACKAGE",
    "FASHION_ROOT",
    "MULTIMNIST_PAIRS",
    "ONE_POOL",
    "SPLITS",
    "Dataset",
    "LabelInfo",
    "Split",
    "assemble_splits",
    "cache_dir",
    "compose_pairs",
    "load_data",
    "multimnist_pairs",
    "package_file",
    "split_indices",
]
