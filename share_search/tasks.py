"""What a task is: its type, its loss (missing labels masked out) and its metrics.

Labels are float arrays with NaN where a sample has no label for that task (several
datasets joined, each labelled for some tasks). Losses and metrics drop those samples;
nothing is imputed. Class labels are stored as integral floats.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable, Literal

import numpy as np

if TYPE_CHECKING:  # torch is imported where a loss is computed, so the spec can name metrics without it
    import torch

TaskType = Literal["multiclass", "binary", "regression"]
TASK_TYPES: tuple[str, ...] = ("multiclass", "binary", "regression")


@dataclass(frozen=True)
class Metric:
    """A metric with its direction; ``fn(y_true, output) -> float`` on masked numpy arrays."""

    name: str
    higher_is_better: bool
    task_types: tuple[str, ...]
    fn: Callable[[np.ndarray, np.ndarray, "Task"], float]


def _predicted_class(output: np.ndarray, task: "Task") -> np.ndarray:
    if task.type == "binary":
        return (output.reshape(-1) > 0).astype(np.int64)
    return output.argmax(axis=1)


def _probabilities(output: np.ndarray, task: "Task") -> np.ndarray:
    if task.type == "binary":
        return 1.0 / (1.0 + np.exp(-output.reshape(-1)))
    z = output - output.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def _accuracy(y, out, task):
    return float((_predicted_class(out, task) == y.astype(np.int64)).mean())


def _balanced_accuracy(y, out, task):
    y = y.astype(np.int64)
    pred = _predicted_class(out, task)
    recalls = [(pred[y == c] == c).mean() for c in np.unique(y)]
    return float(np.mean(recalls))


def _f1(y, out, task):
    from sklearn.metrics import f1_score

    average = "binary" if task.type == "binary" else "macro"
    return float(f1_score(y.astype(np.int64), _predicted_class(out, task), average=average, zero_division=0))


def _auc(y, out, task):
    from sklearn.metrics import roc_auc_score

    y = y.astype(np.int64)
    if len(np.unique(y)) < 2:
        return float("nan")
    p = _probabilities(out, task)
    if task.type == "binary":
        return float(roc_auc_score(y, p))
    present = np.unique(y)
    if len(present) < p.shape[1]:  # one-vs-rest over the classes present
        aucs = [roc_auc_score(y == c, p[:, c]) for c in present]
        return float(np.mean(aucs))
    return float(roc_auc_score(y, p, multi_class="ovr"))


def _as_2d(y, out):
    return y.reshape(len(y), -1), out.reshape(len(out), -1)


def _mae(y, out, task):
    y, out = _as_2d(y, out)
    return float(np.nanmean(np.abs(out - y)))


def _rmse(y, out, task):
    y, out = _as_2d(y, out)
    return float(np.sqrt(np.nanmean(np.nanmean((out - y) ** 2, axis=0))))


def _r2(y, out, task):
    y, out = _as_2d(y, out)
    scores = []
    for k in range(y.shape[1]):
        keep = ~np.isnan(y[:, k])
        yt, yp = y[keep, k], out[keep, k]
        ss_tot = ((yt - yt.mean()) ** 2).sum()
        scores.append(1.0 - ((yt - yp) ** 2).sum() / ss_tot if ss_tot > 0 else float("nan"))
    return float(np.mean(scores))


_CLASSIFICATION = ("multiclass", "binary")
METRICS: dict[str, Metric] = {
    m.name: m
    for m in (
        Metric("accuracy", True, _CLASSIFICATION, _accuracy),
        Metric("balanced_accuracy", True, _CLASSIFICATION, _balanced_accuracy),
        Metric("f1", True, _CLASSIFICATION, _f1),
        Metric("auc", True, _CLASSIFICATION, _auc),
        Metric("mae", False, ("regression",), _mae),
        Metric("rmse", False, ("regression",), _rmse),
        Metric("r2", True, ("regression",), _r2),
    )
}
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
