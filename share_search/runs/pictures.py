"""Pictures of a dense network's predictions: a few fixed validation samples, one small PNG
per dense task with a row per sample: input, ground truth, prediction.

They are made where the network is, at the end of its trial with the weights selected on
validation (``engine.trial``), and stored with the trial as Optuna artifacts, so the report
(which reads only the study) and optuna-dashboard show them without loading a model. The
colour maps are plain numpy; torch is imported only to predict.

Colours: segmentation one colour per class (``SEGMENTATION_PALETTE``, class 0 black),
depth from ``DEPTH_RAMP`` (near bright, far dark; truth and prediction on the truth's
range), normals as RGB = (n + 1) / 2, binary maps as grey levels of the probability;
a pixel without a label (ignored or invalid) is ``NO_LABEL_COLOUR`` (magenta).
"""

from __future__ import annotations

import io
from typing import TYPE_CHECKING, Any, Mapping, Sequence

import numpy as np

from ..spec.heads import DENSE_TASK_TYPES

if TYPE_CHECKING:
    from torch import nn

PICTURE_SAMPLES = 3  # the first validation samples: the same ones for every trial of a study
TILE_SIDE = 72  # a tile's longer side in pixels, about: small images are enlarged by a whole factor, large ones shrunk
GAP = 2  # white pixels between tiles
NO_LABEL_COLOUR = (255, 0, 255)
SEGMENTATION_PALETTE = np.array(
    [
        (0, 0, 0), (31, 119, 180), (255, 127, 14), (44, 160, 44), (214, 39, 40), (148, 103, 189), (140, 86, 75),
        (227, 119, 194), (127, 127, 127), (188, 189, 34), (23, 190, 207), (174, 199, 232), (255, 187, 120),
        (152, 223, 138), (255, 152, 150), (197, 176, 213), (196, 156, 148), (247, 182, 210), (219, 219, 141), (158, 218, 229),
    ],
    dtype=np.uint8,
)  # black, then matplotlib's tab10 and tab20's light shades; classes beyond 20 reuse them
# viridis at six stops (matplotlib's values), from dark purple to yellow
DEPTH_RAMP = np.array([(68, 1, 84), (65, 68, 135), (42, 120, 142), (34, 168, 132), (122, 209, 81), (253, 231, 37)], dtype=float)


LEGENDS = {
    "segmentation": "one colour per class",
    "depth": "depth: near bright (yellow), far dark (purple), on the ground truth's range",
    "normals": "surface normals as RGB = (n + 1) / 2",
    "binary_dense": "grey level = probability (white 1, black 0)",
}


def colour_legend(task_type: str) -> str:
    """What a picture's colours mean, for its caption."""
    return LEGENDS.get(task_type, "")


# --------------------------------------------------------------------------- colour maps
def _no_label(rgb: np.ndarray, missing: np.ndarray) -> np.ndarray:
    rgb[missing] = NO_LABEL_COLOUR
    return rgb


def colour_segmentation(classes: np.ndarray) -> np.ndarray:
    """``(H, W)`` class ids (NaN or negative: no label) -> ``(H, W, 3)`` uint8."""
    classes = np.asarray(classes, dtype=float)
    missing = ~np.isfinite(classes) | (classes < 0)
    ids = np.where(missing, 0, classes).astype(np.int64) % len(SEGMENTATION_PALETTE)
    return _no_label(SEGMENTATION_PALETTE[ids].copy(), missing)


def depth_range(depth: np.ndarray) -> tuple[float, float]:
    """The valid (finite, > 0) values' range of a depth map, for colouring truth and prediction alike."""
    valid = np.asarray(depth, dtype=float)
    valid = valid[np.isfinite(valid) & (valid > 0)]
    if not valid.size:
        return 0.0, 1.0
    return float(valid.min()), float(valid.max())


def colour_depth(depth: np.ndarray, near: float, far: float, valid: np.ndarray | None = None) -> np.ndarray:
    """``(H, W)`` depths -> ``(H, W, 3)`` uint8 on ``DEPTH_RAMP``: ``near`` brightest, ``far``
    darkest, values beyond clipped; ``valid`` (default: finite and > 0) marks labelled pixels."""
    depth = np.asarray(depth, dtype=float)
    if valid is None:
        valid = np.isfinite(depth) & (depth > 0)
    span = far - near if far > near else 1.0
    t = np.clip((far - np.nan_to_num(depth, nan=far)) / span, 0.0, 1.0) * (len(DEPTH_RAMP) - 1)
    low = np.minimum(t.astype(np.int64), len(DEPTH_RAMP) - 2)
    frac = (t - low)[..., None]
    rgb = DEPTH_RAMP[low] * (1 - frac) + DEPTH_RAMP[low + 1] * frac
    return _no_label(np.rint(rgb).astype(np.uint8), ~valid)


def colour_normals(normals: np.ndarray) -> np.ndarray:
    """``(3, H, W)`` normals -> ``(H, W, 3)`` uint8 as RGB = (n / |n| + 1) / 2; a zero or
    non-finite vector has no label."""
    n = np.moveaxis(np.asarray(normals, dtype=float), 0, -1)
    norm = np.linalg.norm(np.nan_to_num(n), axis=-1, keepdims=True)
    missing = ~np.isfinite(n).all(axis=-1) | (norm[..., 0] == 0)
    unit = np.nan_to_num(n) / np.where(norm > 0, norm, 1.0)
    return _no_label(np.rint((unit + 1) / 2 * 255).astype(np.uint8), missing)


def colour_probability(p: np.ndarray) -> np.ndarray:
    """``(H, W)`` values in [0, 1] (a label or a probability; NaN or negative: no label) -> grey levels."""
    p = np.asarray(p, dtype=float)
    missing = ~np.isfinite(p) | (p < 0)
    grey = np.rint(np.clip(np.nan_to_num(p), 0, 1) * 255).astype(np.uint8)
    return _no_label(np.repeat(grey[..., None], 3, axis=-1), missing)


def colour_input(x: np.ndarray) -> np.ndarray:
    """An input image ``(C, H, W)`` or ``(H, W)`` -> ``(H, W, 3)`` uint8, stretched to its own
    range: grey for one channel, RGB for three, the first channel otherwise."""
    x = np.asarray(x, dtype=float)
    x = x[None] if x.ndim == 2 else x
    x = x if x.shape[0] == 3 else x[:1]
    x = np.nan_to_num(x)
    lo, hi = x.min(), x.max()
    scaled = (x - lo) / (hi - lo) if hi > lo else np.zeros_like(x)
    rgb = np.moveaxis(np.rint(scaled * 255).astype(np.uint8), 0, -1)
    return np.repeat(rgb, 3, axis=-1) if rgb.shape[-1] == 1 else rgb


# --------------------------------------------------------------------------- one task's panel
def shown_prediction(task_type: str, output: np.ndarray) -> np.ndarray:
    """A head's raw output for one sample -> what is drawn: classes (argmax), depth, unit
    normals, or a probability (sigmoid)."""
    output = np.asarray(output, dtype=float)
    if task_type == "segmentation":
        return output.argmax(axis=0)
    if task_type == "normals":
        return output
    squeezed = output[0] if output.ndim == 3 else output
    if task_type == "binary_dense":
        return 1 / (1 + np.exp(-np.clip(squeezed, -60, 60)))
    return squeezed  # depth


def task_tiles(task_type: str, targets: np.ndarray, predictions: np.ndarray) -> list[tuple[np.ndarray, np.ndarray]]:
    """Per sample, (ground truth, prediction) coloured alike (depth on the shown truths' range)."""
    if task_type == "segmentation":
        return [(colour_segmentation(t), colour_segmentation(p)) for t, p in zip(targets, predictions)]
    if task_type == "normals":
        return [(colour_normals(t), colour_normals(p)) for t, p in zip(targets, predictions)]
    if task_type == "depth":
        near, far = depth_range(targets)
        flat = [t[0] if t.ndim == 3 else t for t in targets]
        return [(colour_depth(t, near, far), colour_depth(p, near, far, valid=np.isfinite(p))) for t, p in zip(flat, predictions)]
    if task_type == "binary_dense":
        return [(colour_probability(t[0] if t.ndim == 3 else t), colour_probability(p)) for t, p in zip(targets, predictions)]
    raise ValueError(f"no picture for task type {task_type!r} (dense types: {', '.join(DENSE_TASK_TYPES)})")


def panel_png(rows: Sequence[Sequence[np.ndarray]]) -> bytes:
    """Tiles ``(H, W, 3)`` uint8 in a grid (a row per sample), resized to about ``TILE_SIDE``
    pixels (nearest neighbour, so classes stay classes), white gaps between, as PNG bytes."""
    from PIL import Image

    h, w = rows[0][0].shape[:2]
    if max(h, w) <= TILE_SIDE:
        size = (w * max(1, TILE_SIDE // max(h, w)), h * max(1, TILE_SIDE // max(h, w)))
    else:
        size = (max(1, round(w * TILE_SIDE / max(h, w))), max(1, round(h * TILE_SIDE / max(h, w))))
    n_cols = max(len(r) for r in rows)
    sheet = Image.new("RGB", (n_cols * size[0] + (n_cols + 1) * GAP, len(rows) * size[1] + (len(rows) + 1) * GAP), "white")
    for i, row in enumerate(rows):
        for j, tile in enumerate(row):
            image = Image.fromarray(np.ascontiguousarray(tile), "RGB").resize(size, Image.NEAREST)
            sheet.paste(image, (GAP + j * (size[0] + GAP), GAP + i * (size[1] + GAP)))
    out = io.BytesIO()
    sheet.save(out, format="PNG", optimize=True)
    return out.getvalue()


def task_panel(task_type: str, inputs: np.ndarray, targets: np.ndarray, outputs: np.ndarray) -> bytes:
    """One dense task's PNG: a row per sample of input, ground truth, prediction."""
    predictions = [shown_prediction(task_type, o) for o in outputs]
    tiles = task_tiles(task_type, np.asarray(targets), predictions)
    return panel_png([(colour_input(x), truth, guess) for x, (truth, guess) in zip(inputs, tiles)])


# --------------------------------------------------------------------------- from a network
def first_samples(split: Any, n: int) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """The first ``n`` samples of a split (in memory, or a folder split read from disk):
    inputs and every label, as numpy arrays."""
    if hasattr(split, "samples"):  # a data.folder.FolderSplit
        samples = split.samples()
        pairs = [samples[i] for i in range(min(n, len(samples)))]
        x = np.stack([np.asarray(p[0]) for p in pairs])
        return x, {name: np.stack([np.asarray(p[1][name]) for p in pairs]) for name in pairs[0][1]}
    return np.asarray(split.x[:n]), {name: np.asarray(v[:n]) for name, v in split.y.items()}


def dense_pictures(model: nn.Module, split: Any, tasks: Sequence[Any], n: int = PICTURE_SAMPLES) -> dict[str, bytes]:
    """``{task name: PNG}`` for each dense task: the first ``n`` samples of ``split`` (the
    validation split) through ``model`` in eval mode; ``{}`` when no task is dense."""
    import torch

    dense = [t for t in tasks if t.type in DENSE_TASK_TYPES]
    if not dense or len(split) == 0:
        return {}
    x, y = first_samples(split, n)
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            outputs: Mapping[str, torch.Tensor] = model(torch.as_tensor(x, dtype=torch.float32, device=device))
    finally:
        model.train(was_training)
    return {t.name: task_panel(t.type, x, y[t.label], outputs[t.name].float().cpu().numpy()) for t in dense}
