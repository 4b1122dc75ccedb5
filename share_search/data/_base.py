"""The form every data source produces: arrays in memory (a folder source may stream instead).

Inputs are float32 arrays ``(N, *input_shape)``. Labels are float32 arrays ``(N,)`` or
``(N, k)`` with NaN where a sample carries no label for that task; class labels are
integral floats. Per-pixel (dense) labels, also float32: ``segmentation`` (N, H, W) class
ids, -1 or NaN where a pixel is unlabelled; ``depth`` (N, 1, H, W), 0 where invalid;
``normals`` (N, 3, H, W), a zero vector where invalid; ``binary_dense`` (N, H, W) in {0, 1},
-1 or NaN where unlabelled. Splits are fixed before training from the spec's seed.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

if TYPE_CHECKING:  # the folder module imports torch, which this one does not need
    from .folder import FolderSplit

LabelKind = Literal["multiclass", "binary", "regression", "segmentation", "depth", "normals", "binary_dense"]

# What ``Dataset.split_origin`` says when a source splits one pool of rows at random.
RANDOM_SPLIT_ORIGIN = "random split by the spec's seed (data.val_fraction, data.test_fraction)"


@dataclass(frozen=True)
class LabelInfo:
    """What a label column holds, so a task can default its type and output size."""

    kind: str  # a LabelKind: the task type a task on this label defaults to
    n_outputs: int  # classes, 1 for binary, width for regression; per pixel: classes, 1 depth, 3 normals, 1 binary_dense
    class_names: tuple[str, ...] | None = None
    description: str = ""


@dataclass(frozen=True)
class Split:
    x: np.ndarray
    y: dict[str, np.ndarray]

    def __len__(self) -> int:
        return len(self.x)


@dataclass(frozen=True)
class Dataset:
    """Train, val and test splits: arrays in memory (``Split``) or, for a folder source, a
    ``folder.FolderSplit`` read from disk as it trains."""

    name: str
    input_shape: tuple[int, ...]
    labels: dict[str, LabelInfo]
    train: Split | FolderSplit
    val: Split | FolderSplit
    test: Split | FolderSplit
    description: str = ""
    unused_labels: tuple[str, ...] = ()  # labels of a user file that no task uses: neither read nor checked
    manifest: Any = None  # a folder source's ``folder.Manifest`` (splits, fields, in memory or streamed), which validate prints
    # per split, where its rows came from (an official split, carved from train, a random split), as validate says
    split_origin: dict[str, str] = field(default_factory=lambda: dict.fromkeys(("train", "val", "test"), RANDOM_SPLIT_ORIGIN))

    def split(self, name: str) -> Split | FolderSplit:
        return {"train": self.train, "val": self.val, "test": self.test}[name]

    @property
    def sizes(self) -> dict[str, int]:
        return {"train": len(self.train), "val": len(self.val), "test": len(self.test)}
