"""Per-pixel tasks: which pixels carry a label (the valid mask) and each type's loss on them.

Labels as the data gives them (``data._base``), float32 with the ignored pixels marked:

| type | target | output | valid pixel | loss on the valid pixels |
|---|---|---|---|---|
| ``segmentation`` | (N, H, W) class ids | (N, C, H, W) logits | class id >= 0 (-1 or NaN: ignore) | cross-entropy |
| ``depth`` | (N, 1, H, W) | (N, 1, H, W) | depth > 0 (0 or NaN: invalid) | L1 |
| ``normals`` | (N, 3, H, W) | (N, 3, H, W) | a non-zero vector without NaN | 1 − cosine, both L2-normalised |
| ``binary_dense`` | (N, H, W) in {0, 1} | (N, 1, H, W) logits | 0 or 1 (-1 or NaN: ignore) | BCE with logits |

Each loss is a sum over valid pixels and their count (``loss_terms``), so a split's loss
accumulated batch by batch is the same number as over the whole split at once, and a batch
without a valid pixel gives 0 (still differentiable) without asking the device whether any
pixel is valid. Normals' cosine normalises the label too: the angle metrics do not depend on
a label's length either.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

IGNORE = -1  # the class id of an unlabelled pixel in a segmentation or binary_dense label
NORMAL_EPS = 1e-12  # F.normalize's floor on a vector's length


def as_output_shape(target: Tensor, output: Tensor) -> Tensor:
    """A depth or binary label (N, H, W) as its output's (N, 1, H, W)."""
    return target.reshape(output.shape) if target.shape != output.shape and target.numel() == output.numel() else target


def valid_pixels(task_type: str, target: Tensor) -> Tensor:
    """Boolean (N, H, W) (depth: (N, 1, H, W)): the pixels whose label counts (NaN is never valid)."""
    if task_type == "segmentation":
        return target >= 0
    if task_type == "depth":
        return target > 0
    if task_type == "normals":
        return (torch.nan_to_num(target, nan=0.0).abs().sum(1) > 0) & ~torch.isnan(target).any(1)
    if task_type == "binary_dense":
        return (target == 0) | (target == 1)
    raise ValueError(f"no per-pixel valid mask for task type {task_type!r}")


def class_ids(target: Tensor, valid: Tensor) -> Tensor:
    """A segmentation label as int64 class ids, every ignored pixel ``IGNORE``."""
    return torch.where(valid, torch.nan_to_num(target, nan=0.0), IGNORE).long()


def loss_terms(task_type: str, output: Tensor, target: Tensor) -> tuple[Tensor, Tensor]:
    """(sum of the per-pixel losses over valid pixels, number of valid pixels), both 0-d tensors."""
    if task_type in ("depth", "binary_dense"):
        target = as_output_shape(target, output)
    valid = valid_pixels(task_type, target)
    if task_type == "segmentation":
        total = F.cross_entropy(output, class_ids(target, valid), ignore_index=IGNORE, reduction="sum")
    elif task_type == "depth":
        total = torch.where(valid, (output - torch.nan_to_num(target)).abs(), 0.0).sum()
    elif task_type == "normals":
        cosine = (F.normalize(output, dim=1, eps=NORMAL_EPS) * F.normalize(torch.nan_to_num(target), dim=1, eps=NORMAL_EPS)).sum(1)
        total = torch.where(valid, 1.0 - cosine, 0.0).sum()
    elif task_type == "binary_dense":
        bce = F.binary_cross_entropy_with_logits(output, torch.where(valid, target, 0.0), reduction="none")
        total = torch.where(valid, bce, 0.0).sum()
    else:
        raise ValueError(f"no per-pixel loss for task type {task_type!r}")
    return total, valid.sum()


def dense_loss(task_type: str, output: Tensor, target: Tensor) -> Tensor:
    """The mean loss over valid pixels; 0 (still differentiable) when none is valid."""
    total, count = loss_terms(task_type, output, target)
    return total / count.clamp(min=1)
