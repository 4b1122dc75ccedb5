"""User data: ``.npz``, ``.csv`` and ``.parquet`` files and ``module:function`` sources.

Every array or column that is not an input can be a label; a task picks the labels it
needs by name. The loader is told those names (``wanted``) and reads and checks only
them, so a column no task uses (an id, notes, a constant, NaN or inf) never stops a
file from loading. Without that list (``wanted=None``) every array and numeric column is
a label. A label's kind is inferred from its values (``infer_label``): numbers, or text
class names such as ``cat``/``dog``. Empty cells and NaN are missing labels.

Official splits come from a ``split`` column or array (never a label), from one file per
split (``data.source: {train: a.npz, test: b.npz}``) or from a function returning
``{"train": ..., "test": ...}``; ``assemble_splits`` turns them into train/val/test.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import DataError, ShareSearchError, SpecError, UserCodeError
from ..spec.model import SPLIT_FIELD, DataSpec
from ..user_code import import_user_function
from ._base import Dataset, LabelInfo, Split
from ._split import ONE_POOL, SPLITS, assemble_splits, rows_per_split, take

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


@dataclass(frozen=True)
class Pool:
    """Rows as one file or one returned value gives them, before any check."""

    where: str  # the file or function (and the spec key of a per-split file), as errors name it
    field: str  # what a named array is called there: "column", "array" or "label"
    x: Any
    input_name: str
    labels: dict[str, Any]  # the labels to use
    unused: tuple[str, ...]  # the other labels' names: neither read nor checked
    split: Any = None  # the split field's values, when the rows carry one
    description: str = ""


def _inputs(pool: Pool) -> np.ndarray:
    """The pool's inputs, numeric and complete, as ``(N, ...)``."""
    x = _numeric(pool.x, f"input {pool.input_name!r}", pool.where)
    if x.ndim == 0:
        raise DataError(f"{pool.where}: input {pool.input_name!r} is a scalar; inputs are (N, ...) with one row per sample")
    x = x.reshape(len(x), -1) if x.ndim == 1 else x
    bad = int((~np.isfinite(x.astype(np.float64))).sum())
    if bad:
        raise DataError(f"{pool.where}: input {pool.input_name!r} has {bad} NaN or infinite value(s); inputs must be complete")
    return x


def _label_arrays(pool: Pool, n: int) -> dict[str, np.ndarray]:
    """The pool's labels as numbers or text, one row per input row."""
    if not pool.labels and not pool.unused:
        raise DataError(f"{pool.where}: no labels besides the input {pool.input_name!r}")
    out = {}
    for label, values in pool.labels.items():
        values = _label_values(values, label, pool.where)
        if values.ndim == 0 or len(values) != n:
            rows = "a scalar" if values.ndim == 0 else f"{len(values)} rows"
            raise DataError(f"{pool.where}: label {label!r} has {rows} but input {pool.input_name!r} has {n} rows")
        out[label] = values
    return out


def _one_pool_dataset(name: str, pool: Pool, spec: DataSpec, seed: int) -> Dataset:
    """One file or returned value: its split field gives official splits, else a random split by the seed."""
    x = _inputs(pool)
    y = _label_arrays(pool, len(x))
    if pool.split is None:
        return _dataset(name, pool.where, Split(x, y), None, {ONE_POOL: pool.where}, spec, seed, pool.description, pool.unused)
    field = f"{pool.field} {SPLIT_FIELD!r}"
    split = _array(pool.split)
    if split.ndim == 0 or len(split) != len(x):
        rows = "a scalar" if split.ndim == 0 else f"{len(split)} rows"
        raise DataError(f"{pool.where}: {field} has {rows} but input {pool.input_name!r} has {len(x)} rows")
    rows = rows_per_split(split, f"{pool.where}: {field}")
    sources = {s: f"rows of {pool.where} with {field} = {s}" for s in rows}
    return _dataset(name, pool.where, Split(x, y), rows, sources, spec, seed, pool.description, pool.unused)


def _pools_dataset(name: str, pools: Mapping[str, Pool], spec: DataSpec, seed: int, description: str) -> Dataset:
    """Official splits given one by one (files, or a function's mapping): alike, then joined to infer labels once.

    Label kinds and class numbers come from all splits together, so a class that only
    val holds is still the same class in every split.
    """
    _check_alike(pools)
    xs = {s: _inputs(p) for s, p in pools.items()}
    ys = {s: _label_arrays(p, len(xs[s])) for s, p in pools.items()}
    first = next(iter(pools))
    for s, pool in pools.items():
        if xs[s].shape[1:] != xs[first].shape[1:]:
            raise DataError(
                f"{pool.where}: input {pool.input_name!r} is {xs[s].shape[1:]} per row, "
                f"but {xs[first].shape[1:]} in the {first} split ({pools[first].where})"
            )
    y = {label: _joined_label(label, pools, ys) for label in pools[first].labels}
    ends = np.cumsum([len(x) for x in xs.values()])
    rows = {s: np.arange(end - len(xs[s]), end) for s, end in zip(pools, ends)}
    where = ", ".join(p.where for p in pools.values())
    whole = Split(np.concatenate(list(xs.values())), y)
    return _dataset(name, where, whole, rows, {s: p.where for s, p in pools.items()}, spec, seed, description, pools[first].unused)


def _check_alike(pools: Mapping[str, Pool]) -> None:
    """Splits given one by one carry the same named arrays or columns, and no split field of their own."""
    first = next(iter(pools))
    names = {*pools[first].labels, *pools[first].unused}
    for pool in pools.values():
        if pool.split is not None:
            raise DataError(f"{pool.where}: has a {pool.field} {SPLIT_FIELD!r}, but the splits are already given one by one; drop it")
        theirs = {*pool.labels, *pool.unused}
        for missing in sorted(names - theirs):
            raise DataError(
                f"{pool.where}: no {pool.field} {missing!r}, which the {first} split ({pools[first].where}) has; "
                f"every split carries the same {pool.field}s"
            )
        for extra in sorted(theirs - names):
            raise DataError(
                f"{pool.where}: {pool.field} {extra!r} is not in the {first} split ({pools[first].where}); "
                f"every split carries the same {pool.field}s"
            )


def _joined_label(label: str, pools: Mapping[str, Pool], ys: Mapping[str, Mapping[str, np.ndarray]]) -> np.ndarray:
    """One label of every split, joined; its row shape and its kind (numbers or text) agree with the first split's.

    A split whose cells are all empty reads as NaN numbers: beside text, they are missing class names.
    """
    first = next(iter(pools))
    parts = {s: y[label] for s, y in ys.items()}
    if any(v.dtype.kind == "O" for v in parts.values()):
        parts = {s: (np.full(v.shape, None, dtype=object) if _all_missing_numbers(v) else v) for s, v in parts.items()}
    for s, values in parts.items():
        if (values.dtype.kind == "O") != (parts[first].dtype.kind == "O"):
            kinds = ("text (class names)", "numbers") if values.dtype.kind == "O" else ("numbers", "text (class names)")
            raise DataError(
                f"{pools[s].where}: label {label!r} holds {kinds[0]}, but {kinds[1]} in the {first} split "
                f"({pools[first].where}); give it alike in every split"
            )
        if values.shape[1:] != parts[first].shape[1:]:
            raise DataError(
                f"{pools[s].where}: label {label!r} is {values.shape[1:]} per row, "
                f"but {parts[first].shape[1:]} in the {first} split ({pools[first].where})"
            )
    return np.concatenate(list(parts.values()))


def _all_missing_numbers(values: np.ndarray) -> bool:
    return values.dtype.kind == "f" and bool(np.isnan(values).all())


def _dataset(
    name: str, where: str, whole: Split, rows: Mapping[str, np.ndarray] | None, sources: Mapping[str, str],
    spec: DataSpec, seed: int, description: str, unused: tuple[str, ...],
) -> Dataset:  # fmt: skip
    """Infer label kinds over every row, then train/val/test by ``assemble_splits``.

    ``rows``: row indices per official split, or None for one pool split at random by the
    seed. ``unused`` names the labels no task uses, which are not checked.
    """
    y, infos = {}, {}
    for label, values in whole.y.items():
        y[label], infos[label] = infer_label(values, label, where)
    x = whole.x.astype(np.float32)
    pools = {ONE_POOL: Split(x, y)} if rows is None else {s: take(x, y, idx) for s, idx in rows.items()}
    train, val, test, origin = assemble_splits(pools, spec, seed, sources)
    return Dataset(
        name=name,
        input_shape=tuple(x.shape[1:]),
        labels=infos,
        description=description,
        unused_labels=unused,
        train=train,
        val=val,
        test=test,
        split_origin=origin,
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


def _read_npz(path: Path, spec: DataSpec, wanted: Collection[str] | None, where: str) -> Pool:
    """Only the input, the wanted arrays and the split array are read; an object array is refused (it would unpickle)."""
    key = _input_key(spec, "a .npz file")
    try:
        with np.load(path, allow_pickle=False) as npz:
            used, unused = _pick_labels([k for k in npz.files if k not in (key, SPLIT_FIELD)], wanted)
            present = [k for k in (key, SPLIT_FIELD) if k in npz.files]
            arrays = {k: _npz_array(npz, k, where) for k in present + used}
    except (OSError, ValueError, EOFError) as exc:
        raise DataError(f"{where}: cannot read as .npz: {exc}") from None
    if key not in arrays:
        raise DataError(f"{where}: no input array {key!r} (arrays: {', '.join([*used, *unused]) or 'none'})")
    x, split = arrays.pop(key), arrays.pop(SPLIT_FIELD, None)
    return Pool(where, "array", x, key, arrays, unused, split, f"arrays from {path}")


def _npz_array(npz, key: str, where: str) -> np.ndarray:
    try:
        return npz[key]
    except ValueError as exc:
        if "allow_pickle" not in str(exc):
            raise
        raise DataError(
            f"{where}: array {key!r} holds Python objects, which load only by unpickling (refused); "
            "save text labels as a str array, e.g. np.array(labels, dtype=str)"
        ) from None


def _read_table(path: Path, spec: DataSpec, wanted: Collection[str] | None, where: str) -> Pool:
    """Input columns must be numeric and complete; label columns are numbers or text.

    Without ``wanted``, every numeric column besides the inputs and the split column is a
    label and text columns are ignored.
    """
    import pandas as pd

    kind = path.suffix.lower()
    if not spec.inputs:
        raise SpecError("data.inputs", f"required for a {kind} file: list the input columns (every other numeric column is a label)")
    try:
        table = pd.read_csv(path) if kind == ".csv" else pd.read_parquet(path)
    except Exception as exc:  # pandas and pyarrow raise many types for a malformed file
        raise DataError(f"{where}: cannot read as {kind}: {exc}") from None
    if table.empty:
        raise DataError(f"{where}: the file has no rows")
    columns = [str(c) for c in table.columns]
    table.columns = columns
    for column in spec.inputs:
        if column not in columns:
            raise DataError(f"{where}: input column {column!r} not found (columns: {', '.join(columns)})")
        if not _is_numeric(table[column]):
            raise DataError(f"{where}: input column {column!r} is not numeric (dtype {table[column].dtype})")
        empty = int(table[column].isna().sum())
        if empty:
            raise DataError(f"{where}: input column {column!r} has {empty} empty or NaN cell(s); inputs must be complete")
    rest = [c for c in columns if c not in spec.inputs and c != SPLIT_FIELD]
    if wanted is None:
        used, unused = [c for c in rest if _is_numeric(table[c])], ()
        ignored = [c for c in rest if c not in used]
    else:
        used, unused = _pick_labels(rest, wanted)
        ignored = list(unused)
    labels = {c: _column_values(table[c]) for c in used}
    split = table[SPLIT_FIELD].to_numpy(dtype=object) if SPLIT_FIELD in columns else None
    x = table[list(spec.inputs)].to_numpy(dtype=np.float64)
    what = "non-numeric columns ignored" if wanted is None else "columns no task uses"
    description = f"columns of {path}" + (f"; {what}: {', '.join(ignored)}" if ignored else "")
    return Pool(where, "column", x, ", ".join(spec.inputs), labels, unused, split, description)


def _column_values(column) -> np.ndarray:
    """A numeric column as float64 (empty cells NaN), any other as objects (empty cells None)."""
    if _is_numeric(column):
        return column.to_numpy(dtype=np.float64, na_value=np.nan)
    return column.to_numpy(dtype=object, na_value=None)


def _is_numeric(column) -> bool:
    import pandas as pd

    return pd.api.types.is_numeric_dtype(column) or pd.api.types.is_bool_dtype(column)


def _read_pool(path: Path, spec: DataSpec, wanted: Collection[str] | None, where: str) -> Pool:
    """A ``.npz`` (input key ``x`` or ``inputs[0]``) or a ``.csv``/``.parquet`` table (``inputs`` required)."""
    if not path.is_file():
        relative = "" if path.is_absolute() else f" (relative paths start from {Path.cwd()})"  # a spec file's are made absolute
        raise DataError(f"{where}: data file not found{relative}")
    return _read_npz(path, spec, wanted, where) if path.suffix.lower() == ".npz" else _read_table(path, spec, wanted, where)


def load_file(spec: DataSpec, seed: int, wanted: Collection[str] | None = None) -> Dataset:
    """One file: official splits from its ``split`` column or array, else a random split by the seed."""
    path = Path(spec.source)
    _no_options(spec, path.suffix.lower())
    return _one_pool_dataset(path.name, _read_pool(path, spec, wanted, str(path)), spec, seed)


def load_split_files(spec: DataSpec, seed: int, wanted: Collection[str] | None = None) -> Dataset:
    """``data.source: {train: a.npz, val: b.npz, test: c.npz}``: official splits, one file each, read alike."""
    files = {split: Path(file) for split, file in spec.source.items()}
    _no_options(spec, files["train"].suffix.lower())
    pools = {split: _read_pool(path, spec, wanted, f"{path} (data.source.{split})") for split, path in files.items()}
    description = "one file per split: " + ", ".join(f"{split} {path}" for split, path in files.items())
    return _pools_dataset(files["train"].name, pools, spec, seed, description)


# --------------------------------------------------------------------------- module:function
PER_POOL_FORM = "{'x': inputs, '<label>': array, ...} or (inputs, {'<label>': array})"


def load_module(spec: DataSpec, seed: int, wanted: Collection[str] | None = None) -> Dataset:
    """``module:function`` called with ``data.options`` as keyword arguments.

    It returns ``{"x": inputs, "<label>": array, ...}`` (input key ``x`` or ``inputs[0]``)
    or ``(inputs, {"<label>": array, ...})``; numpy arrays, tensors or lists. A ``split``
    entry among the labels gives official splits row by row; or it returns official splits
    one by one, ``{"train": ..., "val": ..., "test": ...}``, each in one of those forms.
    """
    function = import_user_function(spec.source, "data.source")
    try:
        result = function(**spec.options)
    except ShareSearchError:
        raise
    except Exception as exc:
        raise UserCodeError("data.source", spec.source, exc) from exc
    where = spec.source
    if not _returns_splits(result, spec):
        return _one_pool_dataset(spec.source, _returned_pool(result, spec, where, wanted), spec, seed)
    for split in result:
        if split not in SPLITS:
            raise DataError(f"{where}: returned splits {', '.join(map(repr, result))}: unknown split {split!r} (known: {', '.join(SPLITS)})")
    pools = {s: _returned_pool(result[s], spec, f"{where} (its {s!r} split)", wanted) for s in SPLITS if s in result}
    return _pools_dataset(spec.source, pools, spec, seed, f"splits returned by {spec.source}")


def _returns_splits(result: Any, spec: DataSpec) -> bool:
    """A mapping of splits (``train``, ``val``, ``test`` keys) rather than of arrays: it has no input key."""
    if not isinstance(result, Mapping):
        return False
    input_key = spec.inputs[0] if spec.inputs else DEFAULT_INPUT_KEY
    return input_key not in result and any(isinstance(k, str) and k in SPLITS for k in result)


def _returned_pool(result: Any, spec: DataSpec, where: str, wanted: Collection[str] | None) -> Pool:
    if isinstance(result, Mapping):
        key = _input_key(spec, "a returned mapping")
        x, labels = _split_mapping(result, key, where)
    elif isinstance(result, (tuple, list)) and len(result) == 2 and isinstance(result[1], Mapping):
        if spec.inputs is not None:
            raise SpecError("data.inputs", f"{where} returns (inputs, labels), so data.inputs has nothing to pick; remove it")
        (x, labels), key = result, DEFAULT_INPUT_KEY
    else:
        raise DataError(
            f"{where}: must return {PER_POOL_FORM}, or {{'train': ..., 'val': ..., 'test': ...}} of those, "
            f"got {type(result).__name__}"
        )
    labels = dict(labels)
    split = labels.pop(SPLIT_FIELD, None)
    labels, unused = _labels_to_use(labels, where, wanted)
    return Pool(where, "label", x, key, labels, unused, split, f"returned by {spec.source}")
