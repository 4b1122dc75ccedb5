"""Seeded train/val/test splits, official splits and the ``max_samples`` cut, shared by every source.

Each use of randomness draws from its own stream (``rng(seed, stream)``), so changing
how many pairs MultiMNIST builds, say, never changes which rows the split picks.

``assemble_splits`` is the one rule for turning what a source gives (one pool of rows, or
official splits) into train/val/test: val is carved from train, never from test, and an
official val given without a test is held out as the test split.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace

import numpy as np

from ..errors import DataError, SpecError, shown
from ..spec.model import DataSpec
from ..spec.model import SPLIT_NAMES as SPLITS
from ._base import Dataset, Split

ONE_POOL = "all"  # the pool name of a source without official splits: it is split at random by the seed
# The values a split field may hold (compared without case or surrounding blanks), and the split each means.
SPLIT_SPELLINGS = {"train": "train", "val": "val", "valid": "val", "validation": "val", "test": "test"}
KNOWN_SPELLINGS = "train, val (or valid, validation), test"
MAX_SHOWN_VALUES = 5

# One stream per purpose; the values only need to differ.
SPLIT_STREAM, PAIR_STREAM, SUBSAMPLE_STREAM, LAYER_STREAM = 1, 2, 3, 4


def rng(seed: int, stream: int) -> np.random.Generator:
    """A generator that depends only on the spec's seed and the purpose it serves."""
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise SpecError("seed", f"must be an integer >= 0, got {seed!r}")
    return np.random.default_rng((int(seed), stream))


def split_indices(n: int, val_fraction: float, test_fraction: float, seed: int) -> dict[str, np.ndarray]:
    """Disjoint, sorted row indices per split; every split gets at least one row."""
    n_val = max(1, round(n * val_fraction))
    n_test = max(1, round(n * test_fraction))
    if n - n_val - n_test < 1:
        raise SpecError(
            "data",
            f"{n} rows cannot fill train, val and test (val_fraction={val_fraction}, test_fraction={test_fraction})",
        )
    order = rng(seed, SPLIT_STREAM).permutation(n)
    return {
        "val": np.sort(order[:n_val]),
        "test": np.sort(order[n_val : n_val + n_test]),
        "train": np.sort(order[n_val + n_test :]),
    }


def take(x: np.ndarray, y: dict[str, np.ndarray], idx: np.ndarray) -> Split:
    return Split(x=x[idx], y={k: v[idx] for k, v in y.items()})


def subsample(data: Dataset, max_samples: int | None, seed: int) -> Dataset:
    """Keep about ``max_samples`` rows in all, each split cut by the same proportion.

    Proportional so that val and test stay in their ratio to train; each split keeps
    at least one row and the kept rows stay in their original order.
    """
    rows = subsample_rows(data.sizes, max_samples, seed)
    if rows is None:
        return data
    return replace(data, **{name: take(data.split(name).x, data.split(name).y, rows[name]) for name in SPLITS})


def subsample_rows(sizes: Mapping[str, int], max_samples: int | None, seed: int) -> dict[str, np.ndarray] | None:
    """The rows ``subsample`` keeps of each split, sorted (None: all of them)."""
    total = sum(sizes.values())
    if max_samples is None or max_samples >= total:
        return None
    gen = rng(seed, SUBSAMPLE_STREAM)
    rows = {}
    for name in SPLITS:
        keep = max(1, round(sizes[name] * max_samples / total))
        rows[name] = np.sort(gen.choice(sizes[name], size=min(keep, sizes[name]), replace=False))
    return rows


def rows_per_split(values, where: str) -> dict[str, np.ndarray]:
    """Row indices per split named by a split field (``SPLIT_SPELLINGS``), in SPLITS order.

    ``where`` names the file and the field (e.g. ``d.csv: column 'split'``); an empty cell or
    a value that names no split is an error that lists the bad values.
    """
    array = np.asarray(values)
    if array.ndim != 1:
        raise DataError(f"{where} has shape {array.shape}; it holds one split name per row")
    if array.dtype.kind == "O":
        array = np.array(["" if _no_value(v) else str(v) for v in array], dtype=str)
    text = np.char.strip(array.astype(str)) if len(array) else array.astype(str)
    uniques, inverse = np.unique(text, return_inverse=True)
    unknown = [str(u) for u in uniques if str(u).lower() not in SPLIT_SPELLINGS]
    if unknown:
        bad = ", ".join(shown(u) if u else "'' (empty)" for u in unknown[:MAX_SHOWN_VALUES])
        more = f" and {len(unknown) - MAX_SHOWN_VALUES} more" if len(unknown) > MAX_SHOWN_VALUES else ""
        raise DataError(f"{where} has unknown split value(s) {bad}{more}; each row needs one of: {KNOWN_SPELLINGS}")
    split_of_unique = np.array([SPLIT_SPELLINGS[str(u).lower()] for u in uniques], dtype=object)
    split_of_row = split_of_unique[inverse.reshape(-1)] if len(uniques) else np.array([], dtype=object)
    return {name: np.flatnonzero(split_of_row == name) for name in SPLITS if (split_of_row == name).any()}


def _no_value(value) -> bool:
    return value is None or (isinstance(value, (float, np.floating)) and bool(np.isnan(value)))


def _carve(train: Split, fraction: float, seed: int, source: str) -> tuple[Split, Split]:
    """``train`` cut in two by the seed: the rest, and ``fraction`` of it (at least one row each)."""
    n_val = max(1, round(len(train) * fraction))
    if len(train) - n_val < 1:
        raise DataError(
            f"{source}: the official train split has {len(train)} row(s), too few to carve a val split "
            f"(data.val_fraction={fraction}) from it and keep a row to train on; give a val split or more train rows"
        )
    order = rng(seed, SPLIT_STREAM).permutation(len(train))
    return take(train.x, train.y, np.sort(order[n_val:])), take(train.x, train.y, np.sort(order[:n_val]))


def assemble_splits(
    pools: Mapping[str, Split], spec: DataSpec, seed: int, sources: Mapping[str, str]
) -> tuple[Split, Split, Split, dict[str, str]]:
    """train, val and test from the pools a source gives, and where each came from.

    ``pools``: ``{ONE_POOL: rows}`` for a source without official splits (split at random by
    the seed: ``split_indices``), else official splits by name. ``sources`` says per pool
    where its rows came from (a file, a split column), for messages and ``split_origin``.

    Official train, val and test are kept as they are. Train and test only: val is carved
    from train by the seed (``data.val_fraction`` of train), never from test. Train and val
    only (e.g. preprocessed NYUv2, whose community reports on val): the selection split is
    carved from train the same way and the official val is held out as the test split.
    """
    if set(pools) == {ONE_POOL}:
        whole = pools[ONE_POOL]
        idx = split_indices(len(whole), spec.val_fraction, spec.test_fraction, seed)
        train, val, test = (take(whole.x, whole.y, idx[name]) for name in SPLITS)
        return train, val, test, _random_origin(sources[ONE_POOL], spec, seed)
    _check_official(pools, sources)
    given = sources["train"]
    if "val" in pools and "test" in pools:
        return pools["train"], pools["val"], pools["test"], {name: f"official {name}: {sources[name]}" for name in SPLITS}
    train, val = _carve(pools["train"], spec.val_fraction, seed, given)
    carved = f"carved from the official train by seed {seed} ({spec.val_fraction:.0%} of its rows)"
    origin = {"train": f"official train less the carved val: {given}", "val": carved}
    if "test" in pools:
        return train, val, pools["test"], {**origin, "test": f"official test: {sources['test']}"}
    held_out = f"official val, held out as test (no test given; selection uses the val carved from train): {sources['val']}"
    return train, val, pools["val"], {**origin, "test": held_out}


def _check_official(pools: Mapping[str, Split], sources: Mapping[str, str]) -> None:
    """Official splits: known names, none empty, a train, and a val or test beside it."""
    for name in pools:
        if name not in SPLITS:
            raise DataError(f"{sources[name]}: unknown split {name!r} (known: {', '.join(SPLITS)})")
    for name, split in pools.items():
        if len(split) == 0:
            raise DataError(f"{sources[name]}: the official {name} split has no rows; every split given needs at least one")
    given = ", ".join(pools)
    if "train" not in pools:
        where = sources[next(iter(pools))]
        raise DataError(f"{where}: official splits need a train split, got only {given}")
    if len(pools) == 1:
        raise DataError(
            f"{sources['train']}: only a train split is given; add val or test rows "
            "(or give one pool without splits, split at random by the seed)"
        )


def _random_origin(source: str, spec: DataSpec, seed: int) -> dict[str, str]:
    rest = 1 - spec.val_fraction - spec.test_fraction
    return {
        "train": f"the other {rest:.0%} of {source} (random split by seed {seed})",
        "val": f"random {spec.val_fraction:.0%} of {source} by seed {seed} (data.val_fraction)",
        "test": f"random {spec.test_fraction:.0%} of {source} by seed {seed} (data.test_fraction)",
    }
