"""What a task is: its type, its loss (missing labels masked out) and its metrics.

Labels are float arrays with NaN where a sample has no label for that task (several
datasets joined, each labelled for some tasks). Losses and metrics drop those samples;
nothing is imputed. Class labels are stored as integral floats.

Per-pixel (dense) tasks mask pixels instead (``dense.py`` says which count); their metrics
are summed batch by batch over a split (``SplitScores``), while a per-sample task's are
computed once on the whole split's arrays.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

if TYPE_CHECKING:  # torch is imported where a loss is computed, so the spec can name metrics without it
    import torch

from .metrics import Metric  # noqa: F401  (re-exported: tasks.Metric)
from ..spec.heads import DENSE_TASK_TYPES
from ..spec.registry import METRICS, resolve

TaskType = Literal["multiclass", "binary", "regression", "segmentation", "depth", "normals", "binary_dense"]
TASK_TYPES: tuple[str, ...] = ("multiclass", "binary", "regression", *DENSE_TASK_TYPES)


DEFAULT_METRIC = {
    "multiclass": "accuracy", "binary": "accuracy", "regression": "mae",
    "segmentation": "miou", "depth": "abs_err", "normals": "mean_angle", "binary_dense": "iou",
}  # fmt: skip


@dataclass(frozen=True)
class Task:
    """One task as the model and the trainer see it (resolved from the spec and the data)."""

    name: str
    label: str
    type: str
    n_outputs: int  # classes for multiclass, 1 for binary, label width for regression
    metric: str
    extra_metrics: tuple[str, ...] = ()
    class_names: tuple[str, ...] | None = None
    head: str | None = None  # a name in registry.HEADS; None: the default of the type (spec.heads.default_head)
    head_options: dict[str, Any] = field(default_factory=dict, hash=False)

    @property
    def higher_is_better(self) -> bool:
        return METRICS[self.metric].higher_is_better

    @property
    def direction(self) -> str:
        """Optuna's word for the primary metric's direction."""
        return "maximize" if self.higher_is_better else "minimize"

    @property
    def metrics(self) -> tuple[str, ...]:
        return (self.metric,) + tuple(m for m in self.extra_metrics if m != self.metric)

    @property
    def metric_directions(self) -> dict[str, bool]:
        """Each metric's direction (higher is better?), primary first, from the metric registry."""
        return {m: METRICS[m].higher_is_better for m in self.metrics}

    @property
    def dense(self) -> bool:
        """One label per pixel (``dense.py``), not per sample."""
        return self.type in DENSE_TASK_TYPES

    def mask(self, target: torch.Tensor) -> torch.Tensor:
        """Rows that carry a label for this task (any labelled output for regression); for a
        dense task, the pixels that do (``dense.valid_pixels``)."""
        import torch

        if self.dense:
            from .dense import valid_pixels

            return valid_pixels(self.type, target)
        present = ~torch.isnan(target)
        return present if present.dim() == 1 else present.any(dim=1)

    def loss(self, output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """Mean loss over labelled rows (a dense task: over valid pixels); zero (still
        differentiable) when none is labelled."""
        import torch
        import torch.nn.functional as F

        if self.dense:
            from .dense import dense_loss

            return dense_loss(self.type, output, target)
        keep = self.mask(target)
        if not bool(keep.any()):
            return output.sum() * 0.0
        output, target = output[keep], target[keep]
        if self.type == "multiclass":
            return F.cross_entropy(output, target.long())
        if self.type == "binary":
            return F.binary_cross_entropy_with_logits(output.reshape(-1), target.reshape(-1))
        target = target.reshape(output.shape)
        present = ~torch.isnan(target)
        diff = torch.where(present, output - torch.nan_to_num(target), torch.zeros_like(output))
        return (diff**2).sum() / present.sum()

    def evaluate(self, output: np.ndarray, target: np.ndarray) -> dict[str, float]:
        """Every metric of this task on the labelled rows; NaN when no row is labelled.
        A dense task's metrics mask the pixels themselves."""
        if self.dense:
            return {m: METRICS[m].fn(target, output, self) for m in self.metrics}
        present = ~np.isnan(target)
        keep = present if present.ndim == 1 else present.any(axis=1)
        if not keep.any():
            return {m: float("nan") for m in self.metrics}
        return {m: METRICS[m].fn(target[keep], output[keep], self) for m in self.metrics}


class SplitScores:
    """A dense task's loss and metrics over one split, summed batch by batch on the device.

    The loss is the per-pixel mean over the split's valid pixels (as if computed at once); the
    metrics that name the same accumulator (``Metric.accumulate``) share one. A metric without
    one gets the whole split's arrays, gathered on the CPU."""

    def __init__(self, task: Task):
        self.task = task
        self.loss_sum: torch.Tensor | float = 0.0
        self.count: torch.Tensor | float = 0.0
        self.accumulators: dict[Any, Any] = {}
        self.gathered: list[str] = []
        for m in task.metrics:
            factory = METRICS[m].accumulate
            if factory is None:
                self.gathered.append(m)
            elif factory not in self.accumulators:
                self.accumulators[factory] = (resolve(factory) if isinstance(factory, str) else factory)(task)
        self.outputs: list[np.ndarray] = []
        self.targets: list[np.ndarray] = []

    def update(self, output: torch.Tensor, target: torch.Tensor) -> None:
        from .dense import loss_terms

        total, count = loss_terms(self.task.type, output, target)
        self.loss_sum, self.count = self.loss_sum + total, self.count + count
        for accumulator in self.accumulators.values():
            accumulator.update(output, target)
        if self.gathered:
            self.outputs.append(output.cpu().numpy())
            self.targets.append(target.cpu().numpy())

    def result(self) -> tuple[float, dict[str, float]]:
        """(the split's loss, every metric of the task)."""
        count = float(self.count)
        values: dict[str, float] = {}
        for accumulator in self.accumulators.values():
            values |= accumulator.compute()
        for m in self.gathered:
            values[m] = float(METRICS[m].fn(np.concatenate(self.targets), np.concatenate(self.outputs), self.task))
        return (float(self.loss_sum) / count if count else 0.0), {m: values[m] for m in self.task.metrics}
