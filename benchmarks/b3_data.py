"""Data with a planted sharing structure for B3 (a ``module:function`` data source).

How it is made: inputs x ~ N(0, I) in ``dim`` dimensions. The tasks come in ``groups``
groups. Each group g draws its own random "teacher" layer h_g = tanh(x W_g), W_g of shape
(dim, hidden) scaled by ``gain`` / sqrt(dim), and a readout V_g of shape (hidden,
classes); the group's clean class is argmax(h_g V_g). With ``shared_readout`` (as B3 uses
it) every task of the group is a *separately noised copy* of that clean class: each
label is replaced by a uniformly random class with probability ``flip``, independently
per task. Without it, each task draws its own readout V_gk.

So a network that shares layers between the tasks of one group sees two independent
noisy labels of the same target and averages the noise out, while sharing a narrow layer
between groups makes unrelated features compete for its units. The planted answer is to
split by group right at the input; single-task networks (the Δm baseline) and hard
sharing are both worse, so neither reference the tool trains first is the best.

Task names: ``a0, a1, ...`` for group 0, ``b0, b1, ...`` for group 1, and so on. The
validation labels are noised too (a fixed set; the same for every architecture).
"""

from __future__ import annotations

import numpy as np


def planted(n: int = 8000, dim: int = 32, hidden: int = 16, classes: int = 8, groups: int = 2,
            tasks_per_group: int = 2, gain: float = 2.0, flip: float = 0.5, shared_readout: bool = True,
            seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, dim)).astype(np.float32)
    out: dict[str, np.ndarray] = {"x": x}
    for g in range(groups):
        w = rng.standard_normal((dim, hidden)) * gain / np.sqrt(dim)
        h = np.tanh(x @ w)
        shared_v = rng.standard_normal((hidden, classes))
        for k in range(tasks_per_group):
            v = shared_v if shared_readout else rng.standard_normal((hidden, classes))
            y = (h @ v).argmax(axis=1)
            noisy = rng.random(n) < flip  # a ``flip`` share of the labels replaced by a random class
            y[noisy] = rng.integers(classes, size=int(noisy.sum()))
            out[f"{'abcdefgh'[g]}{k}"] = y.astype(np.int64)
    return out
