"""Per-pixel metrics accumulated over a whole split, batch by batch, on the training device.

A split's dense outputs do not fit in memory at once (NYUv2's validation logits alone are
654 × 13 × 288 × 384 floats, 3.7 GB), so each metric keeps running sums that give exactly
the whole-split value: never a mean of per-batch values. One ``Accumulator`` per task and
kind serves all of that kind's metrics (the confusion matrix gives both mIoU and pixel
accuracy); ``metrics.py`` registers the metrics and names the accumulator each reads.

- ``SegmentationScores``: torchmetrics' ``MulticlassJaccardIndex`` (a confusion matrix summed
  over the split; classes that neither the labels nor the predictions contain are left out of
  the mean) gives ``miou``; ``pixel_accuracy`` is its trace over its total.
- ``DepthErrors``: sums of |pred − depth| and |pred − depth| / depth over valid pixels, and
  their count: ``abs_err`` and ``rel_err`` (LibMTL's names) are per-pixel means over the split.
  Written here, not torchmetrics' mean absolute error: that takes no mask, and selecting the
  valid pixels first costs a host sync per batch.
- ``NormalAngles``: the angle between prediction and label, atan2(|p × t|, p · t) (exact to
  float precision near 0°, where acos of a float32 cosine is off by up to 0.02°), in degrees.
  ``mean_angle`` and the fractions ``within_11_25`` / ``within_22_5`` / ``within_30`` (angle
  below 11.25°, 22.5°, 30°, LibMTL's and MTAN's strict <) are exact. ``median_angle`` comes from a
  histogram of ``MEDIAN_BINS`` bins over [0°, 180°]: the median's order statistics are each
  replaced by the middle of their bin, so it is within half a bin (0.005°) of the exact median.
- ``BinaryScores``: torchmetrics' ``BinaryStatScores`` (true/false positives and negatives
  summed over the split) at logit 0 (probability 0.5): ``iou`` = tp / (tp + fp + fn) and
  ``f_score`` = 2 tp / (2 tp + fp + fn) (F1 at that one threshold, not edge detection's
  best-threshold ODS F-score).

A value with nothing to count (no valid pixel; an IoU whose class appears nowhere) is NaN.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import torch
from torch import Tensor

from .dense import as_output_shape, class_ids, valid_pixels

if TYPE_CHECKING:
    from .tasks import Task

MEDIAN_BINS = 18000  # 0.01° wide over [0°, 180°]: the median is within 0.005° of the exact one
THRESHOLDS = {"within_11_25": 11.25, "within_22_5": 22.5, "within_30": 30.0}


def _ratio(numerator: Tensor | float, denominator: Tensor | float) -> float:
    """numerator / denominator as a float; NaN when there is nothing to count."""
    n, d = float(numerator), float(denominator)
    return n / d if d else math.nan


class Accumulator:
    """Running sums over a split: ``update`` with each batch (device tensors), ``compute`` once."""

    def __init__(self, task: Task):
        self.task = task

    def update(self, output: Tensor, target: Tensor) -> None:
        raise NotImplementedError

    def compute(self) -> dict[str, float]:
        """Every metric this accumulator gives, by name."""
        raise NotImplementedError


class SegmentationScores(Accumulator):
    def __init__(self, task: Task):
        super().__init__(task)
        from torchmetrics.classification import MulticlassJaccardIndex

        self.jaccard = MulticlassJaccardIndex(task.n_outputs, average="macro", ignore_index=-1, validate_args=False)

    def update(self, output: Tensor, target: Tensor) -> None:
        self.jaccard = self.jaccard.to(output.device)
        self.jaccard.update(output.argmax(1), class_ids(target, valid_pixels("segmentation", target)))

    def compute(self) -> dict[str, float]:
        confusion = self.jaccard.confmat
        if not int(confusion.sum()):
            return {"miou": math.nan, "pixel_accuracy": math.nan}
        return {"miou": float(self.jaccard.compute()), "pixel_accuracy": _ratio(confusion.diagonal().sum(), confusion.sum())}


class DepthErrors(Accumulator):
    def __init__(self, task: Task):
        super().__init__(task)
        self.sums: Tensor | None = None  # abs, rel, count (float64)

    def update(self, output: Tensor, target: Tensor) -> None:
        target = as_output_shape(target, output)
        valid = valid_pixels("depth", target)
        depth = torch.where(valid, target, 1.0).double()
        error = torch.where(valid, (output.double() - depth).abs(), 0.0)
        sums = torch.stack([error.sum(), (error / depth).sum(), valid.sum().double()])
        self.sums = sums if self.sums is None else self.sums + sums

    def compute(self) -> dict[str, float]:
        if self.sums is None:
            return {"abs_err": math.nan, "rel_err": math.nan}
        absolute, relative, count = self.sums
        return {"abs_err": _ratio(absolute, count), "rel_err": _ratio(relative, count)}


def angles_degrees(output: Tensor, target: Tensor) -> Tensor:
    """(N, H, W) angles between the (N, 3, H, W) vectors, in degrees; any length, float32 or above."""
    output, target = output.float(), torch.nan_to_num(target.float())
    cross = torch.linalg.vector_norm(torch.linalg.cross(output, target, dim=1), dim=1)
    return torch.rad2deg(torch.atan2(cross, (output * target).sum(1)))


class NormalAngles(Accumulator):
    def __init__(self, task: Task):
        super().__init__(task)
        self.sums: Tensor | None = None  # angle sum, count, then one count per threshold (float64)
        self.histogram: Tensor | None = None

    def update(self, output: Tensor, target: Tensor) -> None:
        valid = valid_pixels("normals", target)
        angles = angles_degrees(output, target)
        counted = [torch.where(valid, angles, 0.0).double().sum(), valid.sum().double()]
        counted += [(valid & (angles < limit)).sum().double() for limit in THRESHOLDS.values()]
        sums = torch.stack(counted)
        histogram = torch.histc(torch.where(valid, angles, -1.0), bins=MEDIAN_BINS, min=0.0, max=180.0).double()  # -1: outside, not counted
        self.sums = sums if self.sums is None else self.sums + sums
        self.histogram = histogram if self.histogram is None else self.histogram + histogram

    def compute(self) -> dict[str, float]:
        names = ("mean_angle", "median_angle", *THRESHOLDS)
        if self.sums is None or not float(self.sums[1]):
            return dict.fromkeys(names, math.nan)
        total, count, *within = (float(v) for v in self.sums)
        return {"mean_angle": total / count, "median_angle": histogram_median(self.histogram, 180.0)} | {
            name: n / count for name, n in zip(THRESHOLDS, within)
        }


def histogram_median(histogram: Tensor, high: float) -> float:
    """The median of the values a histogram over [0, ``high``] counts, each order statistic
    taken as the middle of its bin (within half a bin of the exact median)."""
    counts = histogram.double().cpu()
    n = int(counts.sum())
    width = high / len(counts)
    cumulative = counts.cumsum(0)
    middle = [(n - 1) // 2, n // 2]  # the order statistics whose mean is the median (0-based)
    bins = torch.searchsorted(cumulative, torch.tensor(middle, dtype=torch.float64), right=True)
    return float(((bins.double() + 0.5) * width).mean())


class BinaryScores(Accumulator):
    def __init__(self, task: Task):
        super().__init__(task)
        from torchmetrics.classification import BinaryStatScores

        self.stats = BinaryStatScores(ignore_index=-1, validate_args=False)

    def update(self, output: Tensor, target: Tensor) -> None:
        target = as_output_shape(target, output)
        self.stats = self.stats.to(output.device)
        # integer predictions: torchmetrics would take float logits that all lie in [0, 1] for probabilities
        self.stats.update((output > 0).long(), class_ids(target, valid_pixels("binary_dense", target)))

    def compute(self) -> dict[str, float]:
        if not self.stats.update_called:
            return {"iou": math.nan, "f_score": math.nan}
        tp, fp, _, fn, _ = (float(v) for v in self.stats.compute())
        return {"iou": _ratio(tp, tp + fp + fn), "f_score": _ratio(2 * tp, 2 * tp + fp + fn)}
