"""User data: ``.npz``, ``.csv`` and ``.parquet`` files and ``module:function`` sources.

Every array or column that is not an input can be a label; a task picks the labels it
needs by name. The loader is told those names (``wanted``) and reads and checks only
them, so a column no task uses (an id, notes, a constant, NaN or inf) never stops a
file from loading. Without that list (``wanted=None``) every array and numeric column is
a label. A label's kind is inferred from its values (``infer_label``): numbers, or text
class names such as ``cat``/``dog``. Empty cells and NaN are missing labels.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import DataError, ShareSearchError, SpecError, UserCodeError
from ..spec.model import DataSpec
from ..user_code import import_user_function
from ._base import Dataset, LabelInfo
from ._split import SPLITS, split_indices, take

DEFAULT_INPUT_KEY = "x"
MAX_CLASSES = 100  # integral labels with more distinct values are treated as regression


# --------------------------------------------------------------------------- label kinds
def _class_name(value: float) -> str:
    return str(int(value))


def _is_missing(value: Any) -> bool:
    """A missing label in an object array: None, NaN or an empty (blank) string."""
    if value is None:
        return True
    if isinstance(value, str):
        return not value.strip()
    return isinstance(value, (float, np.floating)) and bool(np.isnan(value))


def _check_some_values(uniques: np.ndarray, name: str, where: str, shown: str) -> None:
    if len(uniques) == 0:
        raise DataError(f"{where}: label {name!r} has no values (every row is missing)")
    if len(uniques) == 1:
        raise DataError(f"{where}: label {name!r} is {shown} in every labelled row, nothing to learn (drop it)")


def _class_label(codes: np.ndarray, names: tuple[str, ...], description: str) -> tuple[np.ndarray, LabelInfo]:
    """Class indices 0..C-1 (NaN missing): two classes are binary, more multiclass."""
    if len(names) == 2:
        return codes.astype(np.float32), LabelInfo("binary", 1, names, description)
    return codes.astype(np.float32), LabelInfo("multiclass", len(names), names, description)


def _text_label(values: np.ndarray, name: str, where: str) -> tuple[np.ndarray, LabelInfo]:
    """Class names as text: classes numbered in sorted order, the text kept as class names."""
    if values.ndim != 1:
        raise DataError(f"{where}: text label {name!r} has shape {values.shape}; a text label is (N,), one class name per row")
    missing = np.array([_is_missing(v) for v in values], dtype=bool)
    present = np.array([str(v).strip() for v in values[~missing]], dtype=str)
    uniques = np.unique(present)
    _check_some_values(uniques, name, where, repr(str(uniques[0])) if len(uniques) else "")
    if len(uniques) > MAX_CLASSES:
        raise DataError(
            f"{where}: text label {name!r} has {len(uniques)} distinct values; "
            f"text is read as class names, at most {MAX_CLASSES} classes"
        )
    codes = np.full(len(values), np.nan)
    codes[~missing] = np.searchsorted(uniques, present)
    return _class_label(codes, tuple(str(u) for u in uniques), f"{name!r} from {where}")


def infer_label(values: np.ndarray, name: str, where: str) -> tuple[np.ndarray, LabelInfo]:
    """The label as float32 with NaN kept as missing, and what kind of label it is.

    Text (a str or object array of strings) -> class names, numbered in sorted order.
    2-D -> regression of width k. 1-D integral values: 2 distinct -> binary, up to
    ``MAX_CLASSES`` -> multiclass; classes are renumbered 0..C-1 in sorted order and the
    original values kept as class names. Anything else -> regression.
    """
    if values.dtype.kind in "UO":
        return _text_label(values, name, where)
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
    _check_some_values(uniques, name, where, f"{uniques[0]:g}" if len(uniques) else "")
    if len(uniques) <= MAX_CLASSES and np.array_equal(uniques, np.round(uniques)):
        codes = np.where(missing, np.nan, np.searchsorted(uniques, np.where(missing, uniques[0], values)))
        return _class_label(codes, tuple(_class_name(u) for u in uniques), description)
    return values.astype(np.float32), LabelInfo("regression", 1, None, description)


# --------------------------------------------------------------------------- arrays -> dataset
def _array(value: Any) -> np.ndarray:
    """An array from a numpy array, a torch tensor or a list."""
    if type(value).__module__.startswith("torch"):
        value = value.detach().cpu().numpy()
    return np.asarray(value)


def _numeric(value: Any, what: str, where: str) -> np.ndarray:
    """A numeric array; bool counts as numeric."""
    array = _array(value)
    if array.dtype.kind not in "biuf":
        raise DataError(f"{where}: {what} is not numeric (dtype {array.dtype})")
    return array


def _label_values(value: Any, name: str, where: str) -> np.ndarray:
    """A label as numbers (float64, NaN missing) or as text (an object array of str and None).

    An object array (a table's text column, a list from user code) is text when every
    present item is a string, numbers when every present item is a number or bool.
    """
    array = _array(value)
    if array.dtype.kind in "biuf":
        return array
    if array.dtype.kind == "U":
        return array.astype(object)
    if array.dtype.kind == "O":
        present = [v for v in array.ravel() if not _is_missing(v)]
        texts = [v for v in present if isinstance(v, str)]
        numbers = [v for v in present if isinstance(v, (bool, int, float, np.bool_, np.number))]
        if len(texts) + len(numbers) < len(present):
            odd = next(v for v in present if not isinstance(v, (str, bool, int, float, np.bool_, np.number)))
            raise DataError(f"{where}: label {name!r} holds {type(odd).__name__} values; a label is numbers or text (class names)")
        if texts and numbers:
            raise DataError(f"{where}: label {name!r} mixes text and numbers (e.g. {texts[0]!r} and {numbers[0]!r}); give every class as text")
        if not numbers:
            return array
        return np.array([np.nan if _is_missing(v) else float(v) for v in array.ravel()]).reshape(array.shape)
    raise DataError(f"{where}: label {name!r} is neither numbers nor text (dtype {array.dtype})")


def _pick_labels(names: Collection[Any], wanted: Collection[str] | None) -> tuple[list[Any], tuple[str, ...]]:
    """The label names to read (those the tasks use; all when ``wanted`` is None) and the rest."""
    used = [n for n in names if wanted is None or n in wanted]
    return used, tuple(str(n) for n in names if n not in used)


def _dataset(
    name: str, where: str, x: np.ndarray, input_name: str, labels: Mapping[str, Any], spec: DataSpec, seed: int,
    description: str, unused: tuple[str, ...] = (),
) -> Dataset:  # fmt: skip
    """Check inputs and labels against each other, infer label kinds, split from the seed.

    ``labels`` are the ones to use; ``unused`` names the others, which are not checked.
    """
    x = _numeric(x, f"input {input_name!r}", where)
    if x.ndim == 0:
        raise DataError(f"{where}: input {input_name!r} is a scalar; inputs are (N, ...) with one row per sample")
    x = x.reshape(len(x), -1) if x.ndim == 1 else x
    bad = int((~np.isfinite(x.astype(np.float64))).sum())
    if bad:
        raise DataError(f"{where}: input {input_name!r} has {bad} NaN or infinite value(s); inputs must be complete")
    if not labels and not unused:
        raise DataError(f"{where}: no labels besides the input {input_name!r}")
    y, infos = {}, {}
    for label, values in labels.items():
        values = _label_values(values, label, where)
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
        unused_labels=unused,
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


def _labels_to_use(labels: Mapping[Any, Any], where: str, wanted: Collection[str] | None) -> tuple[dict[str, Any], tuple[str, ...]]:
    """The labels the tasks use, and the names of the others (not checked)."""
    for label in labels:
        if not isinstance(label, str):
            raise DataError(f"{where}: label names are strings, got {label!r}")
    used, unused = _pick_labels(list(labels), wanted)
    return {k: labels[k] for k in used}, unused


# --------------------------------------------------------------------------- files
def _no_options(spec: DataSpec, kind: str) -> None:
    if spec.options:
        key = next(iter(spec.options))
        raise SpecError(f"data.options.{key}", f"unknown option {key!r}: a {kind} source takes no options")


def _read_npz(path: Path, spec: DataSpec, seed: int, wanted: Collection[str] | None) -> Dataset:
    """Only the input and the wanted arrays are read; an object array is refused (it would unpickle)."""
    key = _input_key(spec, "a .npz file")
    try:
        with np.load(path, allow_pickle=False) as npz:
            used, unused = _pick_labels([k for k in npz.files if k != key], wanted)
            arrays = {k: _npz_array(npz, k, path) for k in ([key] if key in npz.files else []) + used}
    except (OSError, ValueError, EOFError) as exc:
        raise DataError(f"{path}: cannot read as .npz: {exc}") from None
    if key not in arrays:
        raise DataError(f"{path}: no input array {key!r} (arrays: {', '.join([*used, *unused]) or 'none'})")
    x = arrays.pop(key)
    return _dataset(path.name, str(path), x, key, arrays, spec, seed, f"arrays from {path}", unused)


def _npz_array(npz, key: str, path: Path) -> np.ndarray:
    try:
        return npz[key]
    except ValueError as exc:
        if "allow_pickle" not in str(exc):
            raise
        raise DataError(
            f"{path}: array {key!r} holds Python objects, which load only by unpickling (refused); "
            "save text labels as a str array, e.g. np.array(labels, dtype=str)"
        ) from None


def _read_table(path: Path, spec: DataSpec, seed: int, wanted: Collection[str] | None) -> Dataset:
    """Input columns must be numeric and complete; label columns are numbers or text.

    Without ``wanted``, every numeric column besides the inputs is a label and text columns
    are ignored.
    """
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
    if wanted is None:
        used, unused = [c for c in rest if _is_numeric(table[c])], ()
        ignored = [c for c in rest if c not in used]
    else:
        used, unused = _pick_labels(rest, wanted)
        ignored = list(unused)
    labels = {c: _column_values(table[c]) for c in used}
    x = table[list(spec.inputs)].to_numpy(dtype=np.float64)
    what = "non-numeric columns ignored" if wanted is None else "columns no task uses"
    description = f"columns of {path}" + (f"; {what}: {', '.join(ignored)}" if ignored else "")
    return _dataset(path.name, str(path), x, ", ".join(spec.inputs), labels, spec, seed, description, unused)


def _column_values(column) -> np.ndarray:
    """A numeric column as float64 (empty cells NaN), any other as objects (empty cells None)."""
    if _is_numeric(column):
        return column.to_numpy(dtype=np.float64, na_value=np.nan)
    return column.to_numpy(dtype=object, na_value=None)


def _is_numeric(column) -> bool:
    import pandas as pd

    return pd.api.types.is_numeric_dtype(column) or pd.api.types.is_bool_dtype(column)


def load_file(spec: DataSpec, seed: int, wanted: Collection[str] | None = None) -> Dataset:
    """A ``.npz`` (input key ``x`` or ``inputs[0]``) or a ``.csv``/``.parquet`` table (``inputs`` required)."""
    path = Path(spec.source)
    _no_options(spec, path.suffix.lower())
    if not path.is_file():
        where = "" if path.is_absolute() else f" (relative paths start from {Path.cwd()})"  # a spec file's are made absolute
        raise DataError(f"{path}: data file not found{where}")
    return _read_npz(path, spec, seed, wanted) if path.suffix.lower() == ".npz" else _read_table(path, spec, seed, wanted)


# --------------------------------------------------------------------------- module:function
def load_module(spec: DataSpec, seed: int, wanted: Collection[str] | None = None) -> Dataset:
    """``module:function`` called with ``data.options`` as keyword arguments.

    It returns ``{"x": inputs, "<label>": array, ...}`` (input key ``x`` or ``inputs[0]``)
    or ``(inputs, {"<label>": array, ...})``; numpy arrays, tensors or lists.
    """
    function = import_user_function(spec.source, "data.source")
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
    labels, unused = _labels_to_use(labels, where, wanted)
    return _dataset(spec.source, where, x, key, labels, spec, seed, f"returned by {spec.source}", unused)
