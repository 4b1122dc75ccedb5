"""Tiny real problems for the training-feature tests: sklearn's 8x8 digits as images, two tasks."""

from __future__ import annotations

import numpy as np
import torch
from sklearn.datasets import load_digits

from share_search.arch import build_model
from share_search.arch.backbones import make_backbone
from share_search.arch.tree import TreeConfig
from share_search.data import Dataset, LabelInfo, Split
from share_search.train.tasks import Task

TASKS = [Task("digit", "digit", "multiclass", 10, "accuracy"), Task("odd", "odd", "binary", 1, "accuracy")]
NAMES = [t.name for t in TASKS]


def digit_images(rows: int = 900, flat: bool = False) -> Dataset:
    """``rows`` digits split 60/20/20, as (1, 8, 8) images (or 64 features when ``flat``)."""
    x, y = load_digits(return_X_y=True)
    order = np.random.default_rng(0).permutation(len(x))[:rows]
    x = (x[order] / 16.0).astype(np.float32)
    y = y[order]
    shape = (64,) if flat else (1, 8, 8)
    x = x.reshape(len(x), *shape)
    cut = [int(0.6 * rows), int(0.8 * rows)]
    splits = [Split(x[i], {"digit": y[i].astype(np.float32), "odd": (y[i] % 2).astype(np.float32)}) for i in np.split(np.arange(rows), cut)]
    return Dataset("digits", shape, {"digit": LabelInfo("multiclass", 10), "odd": LabelInfo("binary", 1)}, *splits)


def conv_network(seed: int = 0, config=None):
    """A small convnet (two conv stages, one dense stage), hard sharing by default."""
    torch.manual_seed(seed)
    backbone = make_backbone("convnet", (1, 8, 8), {"channels": (8, 16), "hidden": 32})
    return build_model(config or TreeConfig.hard_sharing(NAMES, backbone.n_stages), backbone, TASKS)


def mlp_network(seed: int = 0, config=None):
    torch.manual_seed(seed)
    backbone = make_backbone("mlp", (64,), {"widths": (32, 16)})
    return build_model(config or TreeConfig.hard_sharing(NAMES, backbone.n_stages), backbone, TASKS)
