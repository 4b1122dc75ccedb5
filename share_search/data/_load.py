"""``load_data``: pick the loader a ``data.source`` names, then apply ``max_samples``."""

from __future__ import annotations

from typing import Callable

from ..errors import SpecError
from ..spec import DataSpec
from ._base import Dataset
from ._builtin import BUILTIN_SOURCES
from ._files import is_file_source, is_module_source, load_file, load_module
from ._split import subsample


def _loader(source: str) -> Callable[[DataSpec, int], Dataset]:
    if source in BUILTIN_SOURCES:
        return BUILTIN_SOURCES[source]
    if is_file_source(source):
        return load_file
    if is_module_source(source):
        return load_module
    raise SpecError(
        "data.source",
        f"unknown data source {source!r} (known: {', '.join(BUILTIN_SOURCES)}, "
        "or a .npz/.csv/.parquet file, or module:function)",
    )


def load_data(spec: DataSpec, seed: int) -> Dataset:
    """The dataset ``spec`` describes, split train/val/test; the same seed gives the same arrays."""
    return subsample(_loader(spec.source)(spec, seed), spec.max_samples, seed)
