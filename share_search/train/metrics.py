"""Metrics on masked numpy arrays, with their direction and the task types they fit.

Per-pixel metrics are summed batch by batch over a split by an accumulator of
``dense_metrics`` (named here by import path); their ``fn`` runs that accumulator once on
whole arrays, so each metric is also a plain function of (labels, outputs).

No torch here: the spec checks metric names and task types against these without
loading a model. Built-ins are found by name through ``registry.METRICS``; a user adds
one with ``registry.register_metric``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from ..spec.registry import Metric

if TYPE_CHECKING:
    from .tasks import Task


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
# The built-ins, found by name through registry.METRICS.
accuracy = Metric("accuracy", True, _CLASSIFICATION, _accuracy)
balanced_accuracy = Metric("balanced_accuracy", True, _CLASSIFICATION, _balanced_accuracy)
f1 = Metric("f1", True, _CLASSIFICATION, _f1)
auc = Metric("auc", True, _CLASSIFICATION, _auc)
mae = Metric("mae", False, ("regression",), _mae)
rmse = Metric("rmse", False, ("regression",), _rmse)
r2 = Metric("r2", True, ("regression",), _r2)


# --------------------------------------------------------------------------- per pixel
def _on_whole_arrays(name: str, accumulator: str):
    """``fn(y_true, output, task)``: the accumulator updated once with the whole arrays."""

    def fn(y, out, task):
        import torch

        from ..spec.registry import resolve

        scores = resolve(accumulator)(task)
        scores.update(torch.as_tensor(np.asarray(out, dtype=np.float32)), torch.as_tensor(np.asarray(y, dtype=np.float32)))
        return scores.compute()[name]

    fn.__name__ = f"_{name}"
    return fn


def _dense(name: str, higher_is_better: bool, task_type: str, accumulator: str) -> Metric:
    path = f"share_search.train.dense_metrics:{accumulator}"
    return Metric(name, higher_is_better, (task_type,), _on_whole_arrays(name, path), path)


miou = _dense("miou", True, "segmentation", "SegmentationScores")
pixel_accuracy = _dense("pixel_accuracy", True, "segmentation", "SegmentationScores")
abs_err = _dense("abs_err", False, "depth", "DepthErrors")
rel_err = _dense("rel_err", False, "depth", "DepthErrors")
mean_angle = _dense("mean_angle", False, "normals", "NormalAngles")
median_angle = _dense("median_angle", False, "normals", "NormalAngles")
within_11_25 = _dense("within_11_25", True, "normals", "NormalAngles")
within_22_5 = _dense("within_22_5", True, "normals", "NormalAngles")
within_30 = _dense("within_30", True, "normals", "NormalAngles")
iou = _dense("iou", True, "binary_dense", "BinaryScores")
f_score = _dense("f_score", True, "binary_dense", "BinaryScores")
