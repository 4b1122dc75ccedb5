"""What a task is: its type, its loss (missing labels masked out) and its metrics.

Labels are float arrays with NaN where a sample has no label for that task (several
datasets joined, each labelled for some tasks). Losses and metrics drop those samples;
nothing is imputed. Class labels are stored as integral floats.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

if TYPE_CHECKING:  # torch is imported where a loss is computed, so the spec can name metrics without it
    import torch

from .metrics import Metric  # noqa: F401  (re-exported: tasks.Metric)
from ..spec.registry import METRICS

TaskType = Literal["multiclass", "binary", "regression"]
TASK_TYPES: tuple[str, ...] = ("multiclass", "binary", "regression")


DEFAULT_METRIC = {"multiclass": "accuracy", "binary": "accuracy", "regression": "mae"}


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

    def mask(self, target: torch.Tensor) -> torch.Tensor:
        """Rows that carry a label for this task (any labelled output for regression)."""
        import torch

        present = ~torch.isnan(target)
        return present if present.dim() == 1 else present.any(dim=1)

    def loss(self, output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """Mean loss over labelled rows; zero (still differentiable) when none is labelled."""
        import torch
        import torch.nn.functional as F

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
        """Every metric of this task on the labelled rows; NaN when no row is labelled."""
        present = ~np.isnan(target)
        keep = present if present.ndim == 1 else present.any(axis=1)
        if not keep.any():
            return {m: float("nan") for m in self.metrics}
        return {m: METRICS[m].fn(target[keep], output[keep], self) for m in self.metrics}
