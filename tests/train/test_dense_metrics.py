"""Per-pixel metrics against a direct numpy computation on random data, whole and accumulated
over uneven batches (the whole split's value, never a mean of per-batch values), with their
directions in the metric registry."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from share_search.spec.registry import METRICS
from share_search.train.dense_metrics import MEDIAN_BINS, histogram_median
from share_search.train.tasks import SplitScores, Task

RNG_SEED = 0
N, H, W = 11, 9, 7
BATCHES = (3, 1, 5, 2)  # uneven, summing to N
CLASSES = 5

SEGMENTATION = Task("seg", "seg", "segmentation", CLASSES, "miou", ("pixel_accuracy",))
DEPTH = Task("depth", "depth", "depth", 1, "abs_err", ("rel_err",))
NORMALS = Task("normal", "normal", "normals", 3, "mean_angle", ("median_angle", "within_11_25", "within_22_5", "within_30"))
EDGES = Task("edge", "edge", "binary_dense", 1, "iou", ("f_score",))

DIRECTIONS = {
    "miou": True, "pixel_accuracy": True, "abs_err": False, "rel_err": False, "mean_angle": False, "median_angle": False,
    "within_11_25": True, "within_22_5": True, "within_30": True, "iou": True, "f_score": True,
}  # fmt: skip


# --------------------------------------------------------------------------- random data
def segmentation_data(rng):
    target = rng.integers(0, CLASSES - 1, (N, H, W)).astype(np.float32)  # the last class never labelled
    target[rng.random((N, H, W)) < 0.15] = -1
    target[rng.random((N, H, W)) < 0.05] = np.nan
    output = rng.normal(size=(N, CLASSES, H, W)).astype(np.float32)
    output[:, 0] += (target == 0) * 1.5  # class 0 mostly right, the others by chance
    return output, target


def depth_data(rng):
    target = rng.uniform(0.5, 10.0, (N, 1, H, W)).astype(np.float32)
    target[rng.random((N, 1, H, W)) < 0.2] = 0.0
    target[rng.random((N, 1, H, W)) < 0.05] = np.nan
    output = (target + rng.normal(scale=0.8, size=target.shape)).astype(np.float32)
    return np.nan_to_num(output, nan=3.0), target


def normals_data(rng):
    target = rng.normal(size=(N, 3, H, W)).astype(np.float32)
    target /= np.linalg.norm(target, axis=1, keepdims=True)
    target[:, :, rng.random((H, W)) < 0.1] = 0.0  # invalid: a zero vector
    target[0, :, 0, 0] = np.nan
    output = (target * rng.uniform(0.2, 3.0, (N, 1, H, W)) + rng.normal(scale=0.4, size=target.shape)).astype(np.float32)  # any length
    return np.nan_to_num(output, nan=1.0), target


def binary_data(rng):
    target = (rng.random((N, H, W)) < 0.3).astype(np.float32)
    target[rng.random((N, H, W)) < 0.1] = -1
    target[rng.random((N, H, W)) < 0.05] = np.nan
    output = (rng.normal(size=(N, 1, H, W)) + 1.2 * (target[:, None] == 1) - 0.4).astype(np.float32)
    return output, target


# --------------------------------------------------------------------------- numpy references
def segmentation_reference(output, target):
    valid = ~np.isnan(target) & (target >= 0)
    t, p = target[valid].astype(int), output.argmax(1)[valid]
    confusion = np.zeros((CLASSES, CLASSES))
    np.add.at(confusion, (t, p), 1)
    tp = np.diag(confusion)
    union = confusion.sum(0) + confusion.sum(1) - tp
    return {"miou": float(np.mean(tp[union > 0] / union[union > 0])), "pixel_accuracy": float((t == p).mean())}


def depth_reference(output, target):
    valid = ~np.isnan(target) & (target > 0)
    error = np.abs(output[valid].astype(np.float64) - target[valid])
    return {"abs_err": float(error.mean()), "rel_err": float((error / target[valid]).mean())}


def angles_reference(output, target):
    """Angles in degrees (float64 arccos of the normalised dot product) at the valid pixels."""
    t = np.nan_to_num(target.astype(np.float64))
    valid = (np.abs(t).sum(1) > 0) & ~np.isnan(target).any(1)
    p = output.astype(np.float64) / np.linalg.norm(output, axis=1, keepdims=True)
    t = t / np.maximum(np.linalg.norm(t, axis=1, keepdims=True), 1e-300)
    return np.degrees(np.arccos(np.clip((p * t).sum(1), -1.0, 1.0)))[valid]


def normals_reference(output, target):
    angles = angles_reference(output, target)
    return {
        "mean_angle": float(angles.mean()), "median_angle": float(np.median(angles)),
        "within_11_25": float((angles < 11.25).mean()), "within_22_5": float((angles < 22.5).mean()), "within_30": float((angles < 30).mean()),
    }  # fmt: skip


def binary_reference(output, target):
    valid = (target == 0) | (target == 1)
    t, p = target[valid] == 1, output[:, 0][valid] > 0
    tp, fp, fn = (t & p).sum(), (~t & p).sum(), (t & ~p).sum()
    return {"iou": tp / (tp + fp + fn), "f_score": 2 * tp / (2 * tp + fp + fn)}


CASES = {
    "segmentation": (SEGMENTATION, segmentation_data, segmentation_reference),
    "depth": (DEPTH, depth_data, depth_reference),
    "normals": (NORMALS, normals_data, normals_reference),
    "binary_dense": (EDGES, binary_data, binary_reference),
}
TOLERANCE = {"median_angle": 0.5 * 180 / MEDIAN_BINS + 1e-4}  # half a histogram bin; the rest to float precision


def accumulated(task: Task, output: np.ndarray, target: np.ndarray, sizes=BATCHES) -> dict[str, float]:
    scores = SplitScores(task)
    start = 0
    for size in sizes:
        scores.update(torch.as_tensor(output[start : start + size]), torch.as_tensor(target[start : start + size]))
        start += size
    assert start == len(output)
    return scores.result()[1]


def assert_close(got: dict[str, float], want: dict[str, float]) -> None:
    assert set(got) == set(want)
    for name, value in want.items():
        assert got[name] == pytest.approx(value, rel=1e-5, abs=TOLERANCE.get(name, 1e-6)), name


# --------------------------------------------------------------------------- the checks
def test_each_metric_is_registered_with_its_direction_and_task_type():
    for name, higher in DIRECTIONS.items():
        assert METRICS[name].higher_is_better is higher, name
        assert METRICS[name].accumulate is not None, name
    by_type = {task.type: set(task.metrics) for task, _, _ in CASES.values()}
    for task_type, names in by_type.items():
        assert {n for n, m in METRICS.items() if task_type in m.task_types} == names


@pytest.mark.parametrize("case", list(CASES))
def test_each_metric_on_the_whole_arrays_matches_numpy(case):
    task, make, reference = CASES[case]
    output, target = make(np.random.default_rng(RNG_SEED))
    want = reference(output, target)
    assert_close({m: METRICS[m].fn(target, output, task) for m in task.metrics}, want)
    assert_close(task.evaluate(output, target), want)


@pytest.mark.parametrize("case", list(CASES))
def test_accumulated_over_uneven_batches_is_the_whole_split_value(case):
    task, make, reference = CASES[case]
    output, target = make(np.random.default_rng(RNG_SEED + 1))
    assert_close(accumulated(task, output, target), reference(output, target))
    assert_close(accumulated(task, output, target, sizes=(1,) * N), reference(output, target))


def test_miou_is_from_the_summed_confusion_matrix_not_a_mean_of_batch_ious():
    """Two batches whose IoUs average to something else than the split's IoU."""
    task = Task("seg", "seg", "segmentation", 2, "miou")
    target = np.zeros((2, 1, 4), np.float32)
    target[0, 0, :1] = 1  # batch 1: one pixel of class 1, predicted right; batch 2: no class 1, one predicted
    output = np.zeros((2, 2, 1, 4), np.float32)
    output[0, 1, 0, 0] = output[1, 1, 0, 0] = 1.0
    whole = segmentation_reference(output, target)["miou"]
    per_batch = np.mean([segmentation_reference(output[i : i + 1], target[i : i + 1])["miou"] for i in range(2)])
    assert not math.isclose(whole, per_batch)
    assert accumulated(task, output, target, sizes=(1, 1))["miou"] == pytest.approx(whole)


def test_the_histogram_median_is_within_half_a_bin_of_the_exact_median():
    rng = np.random.default_rng(3)
    for n in (1, 2, 7, 1000, 1001):
        values = rng.uniform(0, 180, n)
        histogram = torch.histc(torch.as_tensor(values), bins=MEDIAN_BINS, min=0.0, max=180.0)
        assert abs(histogram_median(histogram, 180.0) - np.median(values)) <= 0.5 * 180 / MEDIAN_BINS + 1e-9


def test_angles_near_zero_are_exact():
    """acos of a float32 cosine would be off by up to 0.02° at 0.01°; atan2 is not."""
    task = Task("normal", "normal", "normals", 3, "mean_angle")
    angle = np.deg2rad(0.01)
    target = np.zeros((1, 3, 1, 1), np.float32)
    target[0, 2] = 1.0
    output = np.array([np.sin(angle), 0.0, np.cos(angle)], np.float32).reshape(1, 3, 1, 1)
    assert METRICS["mean_angle"].fn(target, output, task) == pytest.approx(0.01, abs=1e-5)


@pytest.mark.parametrize("case", list(CASES))
def test_nothing_to_count_is_nan(case):
    task, make, _ = CASES[case]
    output, target = make(np.random.default_rng(RNG_SEED))
    target = np.full_like(target, np.nan)
    assert all(math.isnan(v) for v in task.evaluate(output, target).values())
    loss, metrics = SplitScores(task).result()
    assert loss == 0.0 and all(math.isnan(v) for v in metrics.values())


def test_the_split_loss_is_the_per_pixel_mean_over_the_whole_split():
    task, make, _ = CASES["depth"]
    output, target = make(np.random.default_rng(5))
    scores = SplitScores(task)
    for rows in (slice(0, 2), slice(2, 9), slice(9, N)):
        scores.update(torch.as_tensor(output[rows]), torch.as_tensor(target[rows]))
    assert scores.result()[0] == pytest.approx(depth_reference(output, target)["abs_err"], rel=1e-5)
    assert scores.result()[0] == pytest.approx(task.loss(torch.as_tensor(output), torch.as_tensor(target)).item(), rel=1e-5)


def test_a_metric_without_an_accumulator_gets_the_whole_split_arrays():
    """A user's per-pixel metric written on numpy arrays still sees every batch at once."""
    from share_search.spec.registry import register_metric

    seen = []

    @register_metric("test_valid_pixels", higher_is_better=True, task_types=["depth"])
    def _count(y, out, task):
        seen.append(y.shape)
        return float((np.nan_to_num(y) > 0).sum())

    try:
        task = Task("depth", "depth", "depth", 1, "abs_err", ("test_valid_pixels",))
        output, target = depth_data(np.random.default_rng(2))
        values = accumulated(task, output, target)
        assert seen == [target.shape]
        assert values["test_valid_pixels"] == float((np.nan_to_num(target) > 0).sum())
        assert values["abs_err"] == pytest.approx(depth_reference(output, target)["abs_err"], rel=1e-5)
    finally:
        METRICS.unregister("test_valid_pixels")
