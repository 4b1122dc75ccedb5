"""A small folder in exactly the layout MTAN and LibMTL give preprocessed NYUv2.

``{split}/{field}/{index}.npy``, channels last: ``image`` float32 (H, W, 3) in [0, 1],
``label`` (H, W) in 13 classes with -1 where unlabelled, ``depth`` (H, W, 1) with 0 where
invalid, ``normal`` (H, W, 3) unit vectors (0 where invalid); ``train/`` and ``val/`` only.
The real files are 288 x 384; most tests use a smaller size.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

NYU_SIZE = (288, 384)
SMALL_SIZE = (24, 32)
CLASSES = 13
FIELDS = ("image", "label", "depth", "normal")


def nyuv2_sample(rng: np.random.Generator, size: tuple[int, int], label_dtype=np.float32) -> dict[str, np.ndarray]:
    """One sample's four arrays: a dominant class per sample, so the mode is learnable, and
    a mean depth that follows the image's brightness."""
    h, w = size
    image = rng.random((h, w, 3), dtype=np.float32)
    dominant = rng.integers(0, CLASSES)
    label = np.where(rng.random((h, w)) < 0.6, dominant, rng.integers(0, CLASSES, (h, w))).astype(label_dtype)
    label[rng.random((h, w)) < 0.1] = -1
    depth = (1.0 + 4.0 * image.mean(axis=2, keepdims=True)).astype(np.float32)
    depth[rng.random((h, w, 1)) < 0.2] = 0.0
    normal = rng.normal(size=(h, w, 3)).astype(np.float32)
    normal /= np.linalg.norm(normal, axis=2, keepdims=True)
    normal[rng.random((h, w)) < 0.1] = 0.0
    return {"image": image, "label": label, "depth": depth, "normal": normal}


def write_nyuv2(
    root: Path, n_train: int = 6, n_val: int = 4, size: tuple[int, int] = SMALL_SIZE, seed: int = 0, label_dtype=np.float32
) -> Path:
    """Write the folder; returns ``root``."""
    rng = np.random.default_rng(seed)
    for split, n in (("train", n_train), ("val", n_val)):
        for field in FIELDS:
            (root / split / field).mkdir(parents=True, exist_ok=True)
        for i in range(n):
            for field, array in nyuv2_sample(rng, size, label_dtype).items():
                np.save(root / split / field / f"{i}.npy", array)
    return root


def listing(root: Path) -> dict[str, tuple[int, int]]:
    """Every file under ``root`` with its size and modification time, to show nothing changed."""
    return {str(p.relative_to(root)): (p.stat().st_size, p.stat().st_mtime_ns) for p in sorted(root.rglob("*"))}
