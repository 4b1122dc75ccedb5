"""User data: ``.npz``, ``.csv`` and ``.parquet`` files and ``module:function`` sources.

The loader does not know the tasks, so every array or numeric column that is not an
input becomes a label, and its kind is inferred from its values (``infer_label``); a
task then picks the labels it needs by name. Empty cells and NaN are missing labels.
"""

from __future__ import annotations

import importlib
import os
import re
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import DataError, ShareSearchError, SpecError, UserCodeError
from ..spec import DataSpec
from ._base import Dataset, LabelInfo
from ._split import SPLITS, split_indices, take

FILE_SUFFIXES = (".npz", ".csv", ".parquet")
MODULE_FUNCTION = re.compile(r"[A-Za-z_][\w.]*:[A-Za-z_]\w*")
DEFAULT_INPUT_KEY = "x"
MAX_CLASSES = 100  # integral labels with more distinct values are treated as regression


def is_file_source(source: str) -> bool:
    return Path(source).suffix.lower() in FILE_SUFFIXES


def is_module_source(source: str) -> bool:
    return MODULE_FUNCTION.fullmatch(source) is not None


# --------------------------------------------------------------------------- label kinds
def _class_name(value: float) -> str:
    return str(int(value))


def infer_label(values: np.ndarray, name: str, where: str) -> tuple[np.ndarray, LabelInfo]:
    """The label as float32 with NaN kept as missing, and what kind of label it is.

    2-D -> regression of width k. 1-D integral values: 2 distinct -> binary, up to
    ``MAX_CLASSES`` -> multiclass; classes are renumbered 0..C-1 in sorted order and the
    original values kept as class names. Anything else -> regression.
    """
    values = values.astype(np.float64)
    if values.ndim not in (1, 2):
        raise DataError(f"{where}: label {name!r} has shape {values.shape}; a label is (N,) or (N, k)")
    if np.isinf(values).any():
        raise DataError(f"{where}: label {name!r} has {int(np.isinf(values).sum())} infinite value(s)")
    description = f"{name!r} from {where}"
    if values.ndim == 2:
        return values.astype(np.float32), LabelInfo("regression", values.shape[1], None, description)
    missing = np.isnan(values)
    uniques = np.unique(values[~missing])
    if len(uniques) == 0:
        raise DataError(f"{where}: label {name!r} has no values (every row is missing)")
    if len(uniques) == 1:
        raise DataError(f"{where}: label {name!r} is {uniques[0]:g} in every labelled row, nothing to learn (drop it)")
    if len(uniques) <= MAX_CLASSES and np.array_equal(uniques, np.round(uniques)):
        codes = np.where(missing, np.nan, np.searchsorted(uniques, np.where(missing, uniques[0], values)))
        names = tuple(_class_name(u) for u in uniques)
        if len(uniques) == 2:
            return codes.astype(np.float32), LabelInfo("binary", 1, names, description)
        return codes.astype(np.float32), LabelInfo("multiclass", len(uniques), names, description)
    return values.astype(np.float32), LabelInfo("regression", 1, None, description)


# --------------------------------------------------------------------------- arrays -> dataset
def _numeric(value: Any, what: str, where: str) -> np.ndarray:
    """An array from a numpy array, a torch tensor or a list; bool counts as numeric."""
    if type(value).__module__.startswith("torch"):
        value = value.detach().cpu().numpy()
    array = np.asarray(value)
    if array.dtype.kind not in "biuf":
        raise DataError(f"{where}: {what} is not numeric (dtype {array.dtype})")
    return array


def _dataset(
    name: str, where: str, x: np.ndarray, input_name: str, labels: Mapping[str, Any], spec: DataSpec, seed: int,
    description: str,
) -> Dataset:  # fmt: skip
    """Check inputs and labels against each other, infer label kinds, split from the seed."""
    x = _numeric(x, f"input {input_name!r}", where)
    if x.ndim == 0:
        raise DataError(f"{where}: input {input_name!r} is a scalar; inputs are (N, ...) with one row per sample")
    x = x.reshape(len(x), -1) if x.ndim == 1 else x
    bad = int((~np.isfinite(x.astype(np.float64))).sum())
    if bad:
        raise DataError(f"{where}: input {input_name!r} has {bad} NaN or infinite value(s); inputs must be complete")
    if not labels:
        raise DataError(f"{where}: no labels besides the input {input_name!r}")
    y, infos = {}, {}
    for label, values in labels.items():
        if not isinstance(label, str):
            raise DataError(f"{where}: label names are strings, got {label!r}")
        values = _numeric(values, f"label {label!r}", where)
        if values.ndim == 0 or len(values) != len(x):
            n = "a scalar" if values.ndim == 0 else f"{len(values)} rows"
            raise DataError(f"{where}: label {label!r} has {n} but input {input_name!r} has {len(x)} rows")
        y[label], infos[label] = infer_label(values, label, where)
    x = x.astype(np.float32)
    idx = split_indices(len(x), spec.val_fraction, spec.test_fraction, seed)
    return Dataset(
        name=name,
        input_shape=tuple(x.shape[1:]),
        labels=infos,
        description=description,
        **{s: take(x, y, idx[s]) for s in SPLITS},
    )


def _input_key(spec: DataSpec, what: str) -> str:
    if spec.inputs is None:
        return DEFAULT_INPUT_KEY
    if len(spec.inputs) != 1:
        raise SpecError("data.inputs", f"{what} has one input array: give one key, got {spec.inputs!r}")
    return spec.inputs[0]


def _split_mapping(arrays: Mapping[str, Any], key: str, where: str) -> tuple[Any, dict[str, Any]]:
    if key not in arrays:
        raise DataError(f"{where}: no input array {key!r} (arrays: {', '.join(map(str, arrays)) or 'none'})")
    return arrays[key], {k: v for k, v in arrays.items() if k != key}


# --------------------------------------------------------------------------- files
def _no_options(spec: DataSpec, kind: str) -> None:
    if spec.options:
        key = next(iter(spec.options))
        raise SpecError(f"data.options.{key}", f"unknown option {key!r}: a {kind} source takes no options")


def _read_npz(path: Path, spec: DataSpec, seed: int) -> Dataset:
    key = _input_key(spec, "a .npz file")
    try:
        with np.load(path, allow_pickle=False) as npz:
            arrays = {k: npz[k] for k in npz.files}
    except (OSError, ValueError, EOFError) as exc:
        raise DataError(f"{path}: cannot read as .npz: {exc}") from None
    x, labels = _split_mapping(arrays, key, str(path))
    return _dataset(path.name, str(path), x, key, labels, spec, seed, f"arrays from {path}")


def _read_table(path: Path, spec: DataSpec, seed: int) -> Dataset:
    import pandas as pd

    kind = path.suffix.lower()
    if not spec.inputs:
        raise SpecError("data.inputs", f"required for a {kind} file: list the input columns (every other numeric column is a label)")
    try:
        table = pd.read_csv(path) if kind == ".csv" else pd.read_parquet(path)
    except Exception as exc:  # pandas and pyarrow raise many types for a malformed file
        raise DataError(f"{path}: cannot read as {kind}: {exc}") from None
    columns = [str(c) for c in table.columns]
    table.columns = columns
    for column in spec.inputs:
        if column not in columns:
            raise DataError(f"{path}: input column {column!r} not found (columns: {', '.join(columns)})")
        if not _is_numeric(table[column]):
            raise DataError(f"{path}: input column {column!r} is not numeric (dtype {table[column].dtype})")
        empty = int(table[column].isna().sum())
        if empty:
            raise DataError(f"{path}: input column {column!r} has {empty} empty or NaN cell(s); inputs must be complete")
    rest = [c for c in columns if c not in spec.inputs]
    labels = {c: table[c].to_numpy(dtype=np.float64, na_value=np.nan) for c in rest if _is_numeric(table[c])}
    ignored = [c for c in rest if c not in labels]
    x = table[list(spec.inputs)].to_numpy(dtype=np.float64)
    description = f"columns of {path}" + (f"; non-numeric columns ignored: {', '.join(ignored)}" if ignored else "")
    return _dataset(path.name, str(path), x, ", ".join(spec.inputs), labels, spec, seed, description)


def _is_numeric(column) -> bool:
    import pandas as pd

    return pd.api.types.is_numeric_dtype(column) or pd.api.types.is_bool_dtype(column)


def load_file(spec: DataSpec, seed: int) -> Dataset:
    """A ``.npz`` (input key ``x`` or ``inputs[0]``) or a ``.csv``/``.parquet`` table (``inputs`` required)."""
    path = Path(spec.source)
    _no_options(spec, path.suffix.lower())
    if not path.is_file():
        raise DataError(f"{path}: data file not found (relative paths start from {Path.cwd()})")
    return _read_npz(path, spec, seed) if path.suffix.lower() == ".npz" else _read_table(path, spec, seed)


# --------------------------------------------------------------------------- module:function
def _import(module_name: str):
    """Import a user module, the current directory first, as ``python -m`` would."""
    cwd = os.getcwd()
    added = cwd not in sys.path
    if added:
        sys.path.insert(0, cwd)
    try:
        return importlib.import_module(module_name)
    except (ImportError, SyntaxError) as exc:
        raise SpecError("data.source", f"cannot import module {module_name!r}: {exc}") from None
    finally:
        if added:
            sys.path.remove(cwd)


def load_module(spec: DataSpec, seed: int) -> Dataset:
    """``module:function`` called with ``data.options`` as keyword arguments.

    It returns ``{"x": inputs, "<label>": array, ...}`` (input key ``x`` or ``inputs[0]``)
    or ``(inputs, {"<label>": array, ...})``; numpy arrays, tensors or lists.
    """
    module_name, function_name = spec.source.split(":")
    function = getattr(_import(module_name), function_name, None)
    if not callable(function):
        raise SpecError("data.source", f"module {module_name!r} has no function {function_name!r}")
    try:
        result = function(**spec.options)
    except ShareSearchError:
        raise
    except Exception as exc:
        raise UserCodeError("data.source", spec.source, exc) from exc
    where = spec.source
    if isinstance(result, Mapping):
        key = _input_key(spec, "a returned mapping")
        x, labels = _split_mapping(result, key, where)
    elif isinstance(result, (tuple, list)) and len(result) == 2 and isinstance(result[1], Mapping):
        if spec.inputs is not None:
            raise SpecError("data.inputs", f"{where} returns (inputs, labels), so data.inputs has nothing to pick; remove it")
        (x, labels), key = result, DEFAULT_INPUT_KEY
    else:
        raise DataError(
            f"{where}: must return {{'x': inputs, '<label>': array, ...}} or (inputs, {{'<label>': array}}), "
            f"got {type(result).__name__}"
        )
    return _dataset(spec.source, where, x, key, dict(labels), spec, seed, f"returned by {spec.source}")
