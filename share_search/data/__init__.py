"""Datasets for multi-task search: built-in real data and user files or functions.

``load_data(spec.data, spec.seed)`` returns a ``Dataset`` with fixed train/val/test
splits and one array per label; tasks pick their labels by name. ``data.source`` is a
built-in name (``BUILTIN_SOURCES``), a ``.npz``/``.csv``/``.parquet`` path, or
``module:function``.
"""

from ._base import Dataset, LabelInfo, Split
from ._builtin import BUILTIN_SOURCES
from ._load import load_data

__all__ = ["BUILTIN_SOURCES", "Dataset", "LabelInfo", "Split", "load_data"]
