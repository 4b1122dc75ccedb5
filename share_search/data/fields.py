"""What a per-sample field of a folder source holds, and how it is turned channels-first.

Kinds (as read, channels-first, the form the trainer and the joint augmentation see):

| kind | stored (one file) | read as |
|---|---|---|
| ``image`` | (H, W, C) with C <= 4 channels last, or (H, W); a .png/.jpg | (C, H, W) float32; integer pixels scaled to [0, 1] |
| ``mask`` | (H, W) or (H, W, 1), integral values | (H, W) int64; classes 0..C-1, ``ignore`` (-1) = no label |
| ``depth`` | (H, W) or (H, W, 1) | (1, H, W) float32; 0 = no valid depth |
| ``normals`` | (H, W, 3) | (3, H, W) float32; an all-zero vector = no valid normal |
| ``vector`` | () or (k,) | (k,) float32, one value set per sample |

A field's kind is declared (``data.fields.<name>: <kind>``) or inferred from its folder's
name, then from its shape and dtype (``infer_kind``): ``label``, ``labels``, ``seg``,
``segmentation``, ``semantic``, ``mask`` -> mask; ``depth``, ``disparity`` -> depth;
``normal``, ``normals`` -> normals; ``image``, ``images``, ``img``, ``rgb`` -> image, when the
shape fits that kind; otherwise a 0-D or 1-D array -> vector, a 2-D integer array -> mask, a 2-D float array or a 3-D array
with 1, 3 or 4 channels last -> image. Anything else must be declared.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from ..errors import DataError
from ..spec.model import FIELD_KINDS

__all__ = ["FIELD_KINDS", "PER_PIXEL", "check_kind", "image_scale", "infer_kind", "read_shape", "spatial_size", "to_channels_first"]

NAMED_KINDS = {
    **dict.fromkeys(("label", "labels", "seg", "segmentation", "semantic", "mask"), "mask"),
    **dict.fromkeys(("depth", "disparity"), "depth"),
    **dict.fromkeys(("normal", "normals"), "normals"),
    **dict.fromkeys(("image", "images", "img", "rgb"), "image"),
}
PER_PIXEL = ("image", "mask", "depth", "normals")
MAX_CHANNELS = 4  # an image's channels-last axis: grey, grey + alpha, RGB, RGBA


def _fits(kind: str, shape: Sequence[int]) -> bool:
    """Whether a stored (channels-last) shape can hold ``kind``."""
    if kind == "vector":
        return len(shape) <= 1
    if kind in ("mask", "depth"):
        return len(shape) == 2 or (len(shape) == 3 and shape[2] == 1)
    if kind == "normals":
        return len(shape) == 3 and shape[2] == 3
    return len(shape) == 2 or (len(shape) == 3 and 1 <= shape[2] <= MAX_CHANNELS)  # image


def infer_kind(name: str, shape: Sequence[int], dtype: np.dtype) -> str | None:
    """The kind the module docstring's rule gives, or None when it gives none."""
    named = NAMED_KINDS.get(name.lower())
    if named is not None and _fits(named, shape):
        return named
    if len(shape) <= 1:
        return "vector"
    if len(shape) == 2 and np.dtype(dtype).kind in "iu":
        return "mask"
    return "image" if _fits("image", shape) else None


def check_kind(name: str, kind: str | None, shape: Sequence[int], dtype: np.dtype, where: str) -> str:
    """``kind`` (declared, or None to infer it) if the stored shape can hold it, else a DataError."""
    if kind is None:
        inferred = infer_kind(name, shape, dtype)
        if inferred is None:
            raise DataError(
                f"{where}: cannot tell what field {name!r} holds from its name and shape {tuple(shape)} ({dtype}); "
                f"declare it: data.fields.{name}: one of {', '.join(FIELD_KINDS)}"
            )
        return inferred
    if not _fits(kind, shape):
        raise DataError(f"{where}: field {name!r} is declared {kind}, but its files hold shape {tuple(shape)}; {_stored_form(kind)}")
    return kind


def _stored_form(kind: str) -> str:
    return {
        "image": f"an image is stored (H, W) or (H, W, C) with C <= {MAX_CHANNELS}, channels last",
        "mask": "a mask is stored (H, W) or (H, W, 1)",
        "depth": "a depth map is stored (H, W) or (H, W, 1)",
        "normals": "normals are stored (H, W, 3), channels last",
        "vector": "a vector is stored () or (k,)",
    }[kind]


def read_shape(kind: str, stored: Sequence[int]) -> tuple[int, ...]:
    """The per-sample shape as read (channels-first) from the stored shape."""
    if kind == "vector":
        return (int(stored[0]) if stored else 1,)
    h, w = int(stored[0]), int(stored[1])
    if kind == "mask":
        return (h, w)
    channels = 1 if kind == "depth" or len(stored) == 2 else int(stored[2])
    return (channels, h, w)


def spatial_size(kind: str, stored: Sequence[int]) -> tuple[int, int] | None:
    """(H, W) of a per-pixel field, None for a vector."""
    return None if kind == "vector" else (int(stored[0]), int(stored[1]))


def image_scale(dtype: np.dtype) -> float:
    """What integer pixels are divided by to land in [0, 1] (1 for floats)."""
    dtype = np.dtype(dtype)
    return float(np.iinfo(dtype).max) if dtype.kind in "iu" else 1.0


def to_channels_first(array: np.ndarray, kind: str) -> np.ndarray:
    """A stored array in the form its kind is read (see the module docstring), a new array."""
    if kind == "vector":
        return np.asarray(array, dtype=np.float32).reshape(-1)
    if kind == "mask":
        return np.asarray(array).reshape(array.shape[0], array.shape[1]).astype(np.int64)
    if array.ndim == 2:
        array = array[:, :, None]
    out = np.ascontiguousarray(np.moveaxis(array, -1, 0), dtype=np.float32)
    if kind == "image" and array.dtype.kind in "iu":
        out /= image_scale(array.dtype)
    return out
