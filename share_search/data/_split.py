"""Seeded train/val/test splits and the ``max_samples`` cut, shared by every source.

Each use of randomness draws from its own stream (``rng(seed, stream)``), so changing
how many pairs MultiMNIST builds, say, never changes which rows the split picks.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace

import numpy as np

from ..errors import SpecError
from ._base import Dataset, Split

SPLITS = ("train", "val", "test")

# One stream per purpose; the values only need to differ.
SPLIT_STREAM, PAIR_STREAM, SUBSAMPLE_STREAM = 1, 2, 3


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
