"""``load_data``: pick the loader a ``data.source`` names, then apply ``max_samples``."""

from __future__ import annotations

from collections.abc import Collection, Mapping
from pathlib import Path
from typing import Callable

from ..errors import SpecError
from ..spec.model import DataSpec
from ..spec.model import is_file_source, is_folder_source, is_module_source
from ._base import Dataset
from ._builtin import BUILTIN_SOURCES
from ._files import load_file, load_module, load_split_files
from ._split import subsample


def _loader(source: str | Mapping[str, str]) -> Callable[[DataSpec, int, Collection[str] | None], Dataset]:
    if isinstance(source, Mapping):  # one file per split, checked by the spec
        return load_split_files
    if source in BUILTIN_SOURCES:
        builtin = BUILTIN_SOURCES[source]
        return lambda spec, seed, labels: builtin(spec, seed)  # built-in labels are all well-formed
    if is_file_source(source):
        return load_file
    if is_module_source(source):
        return load_module
    raise SpecError(
        "data.source",
        f"unknown data source {source!r} (known: {', '.join(BUILTIN_SOURCES)}, "
        "or a .npz/.csv/.parquet file, module:function, or a folder path such as ./nyuv2)",
    )


def load_data(spec: DataSpec, seed: int, labels: Collection[str] | None = None) -> Dataset:
    """The dataset ``spec`` describes, split train/val/test; the same seed gives the same arrays.

    ``labels``: the label names the tasks use; a user file's other columns are neither read
    nor checked (None: every label, as tools and tests inspecting a file want).
    """
    if isinstance(spec.source, str) and spec.source not in BUILTIN_SOURCES and (is_folder_source(spec.source) or Path(spec.source).is_dir()):
        from .folder import load_folder  # imports torch

        return load_folder(spec, seed, labels)  # cut to max_samples before anything is read
    if spec.augment is not None and spec.augment.active:
        raise SpecError("data.augment", f"augments the samples of a folder source as they stream; data.source {spec.source!r} is read whole into arrays")
    if spec.in_memory is False:
        raise SpecError("data.in_memory", f"false streams a folder source only; data.source {spec.source!r} is read whole")
    return subsample(_loader(spec.source)(spec, seed, labels), spec.max_samples, seed)
