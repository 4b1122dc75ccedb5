"""Per-pixel task types: each one's valid-pixel mask and loss (against a direct computation),
what an ignored pixel does to the loss and its gradient, the spec's types and metrics, and the
rule that makes a folder field read without ``reduce`` a dense label; then a model trained on
dense labels evaluates the same however the split is batched or held."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from share_search.errors import SpecError
from share_search.spec.model import parse_spec
from share_search.train.dense import dense_loss, loss_terms, valid_pixels
from share_search.train.problem import load_problem
from share_search.train.tasks import DEFAULT_METRIC, TASK_TYPES, Task
from tests.data.folder_fixture import CLASSES, write_nyuv2

N, H, W = 4, 5, 6


def segmentation_case(g):
    target = torch.randint(0, 3, (N, H, W), generator=g).float()
    target[0, 0, :3] = -1
    target[1, 2, 2] = float("nan")
    return torch.randn(N, 3, H, W, generator=g), target


def depth_case(g):
    target = torch.rand(N, 1, H, W, generator=g) * 5
    target[0, 0, 0] = 0.0
    target[1, 0, 1, 1] = float("nan")
    return torch.randn(N, 1, H, W, generator=g), target


def normals_case(g):
    target = F.normalize(torch.randn(N, 3, H, W, generator=g), dim=1)
    target[0, :, 0] = 0.0
    target[1, 1, 1, 1] = float("nan")
    return torch.randn(N, 3, H, W, generator=g), target


def binary_case(g):
    target = (torch.rand(N, H, W, generator=g) < 0.4).float()
    target[0, 0] = -1
    target[1, 1, 1] = float("nan")
    return torch.randn(N, 1, H, W, generator=g), target


def reference_loss(task_type, output, target):
    """The mean per-pixel loss over the valid pixels, pixel by pixel."""
    values = []
    for n in range(N):
        for i in range(H):
            for j in range(W):
                if task_type == "segmentation":
                    t = target[n, i, j]
                    if not torch.isnan(t) and t >= 0:
                        values.append(-torch.log_softmax(output[n, :, i, j], 0)[int(t)])
                elif task_type == "depth":
                    t = target[n, 0, i, j]
                    if t > 0:
                        values.append((output[n, 0, i, j] - t).abs())
                elif task_type == "normals":
                    t = target[n, :, i, j]
                    if not torch.isnan(t).any() and t.abs().sum() > 0:
                        values.append(1 - torch.dot(output[n, :, i, j] / output[n, :, i, j].norm(), t / t.norm()))
                else:
                    t = target[n, i, j]
                    if t in (0.0, 1.0):
                        p = torch.sigmoid(output[n, 0, i, j])
                        values.append(-(t * torch.log(p) + (1 - t) * torch.log(1 - p)))
    return torch.stack(values).mean(), len(values)


CASES = {"segmentation": segmentation_case, "depth": depth_case, "normals": normals_case, "binary_dense": binary_case}
N_OUTPUTS = {"segmentation": 3, "depth": 1, "normals": 3, "binary_dense": 1}


def task_of(task_type: str) -> Task:
    return Task("t", "t", task_type, N_OUTPUTS[task_type], DEFAULT_METRIC[task_type])


@pytest.mark.parametrize("task_type", list(CASES))
def test_each_loss_is_the_mean_over_valid_pixels(task_type):
    output, target = CASES[task_type](torch.Generator().manual_seed(0))
    want, count = reference_loss(task_type, output, target)
    assert task_of(task_type).loss(output, target).item() == pytest.approx(want.item(), rel=1e-5)
    total, n = loss_terms(task_type, output, target)
    assert int(n) == count == int(task_of(task_type).mask(target).sum())


@pytest.mark.parametrize("task_type", list(CASES))
def test_an_ignored_pixel_moves_neither_the_loss_nor_a_gradient(task_type):
    output, target = CASES[task_type](torch.Generator().manual_seed(1))
    output.requires_grad_(True)
    loss = dense_loss(task_type, output, target)
    loss.backward()
    assert torch.isfinite(loss) and torch.isfinite(output.grad).all()
    invalid = ~valid_pixels(task_type, target)
    invalid = invalid if invalid.dim() == 4 else invalid[:, None]
    assert invalid.any()
    assert (output.grad * invalid).abs().sum() == 0
    changed = output.detach() + 100.0 * invalid  # only the ignored pixels' outputs change
    assert dense_loss(task_type, changed, target).item() == pytest.approx(loss.item(), rel=1e-6)


@pytest.mark.parametrize("task_type", list(CASES))
def test_no_valid_pixel_is_a_zero_loss_that_still_backpropagates(task_type):
    output, target = CASES[task_type](torch.Generator().manual_seed(2))
    output.requires_grad_(True)
    loss = dense_loss(task_type, output, torch.full_like(target, float("nan")))
    loss.backward()
    assert loss.item() == 0.0 and (output.grad == 0).all()


def test_depth_and_binary_labels_without_a_channel_fit_their_outputs():
    g = torch.Generator().manual_seed(3)
    output, target = depth_case(g)
    assert dense_loss("depth", output, target[:, 0]).item() == pytest.approx(dense_loss("depth", output, target).item())
    output, target = binary_case(g)
    assert dense_loss("binary_dense", output, target[:, None]).item() == pytest.approx(dense_loss("binary_dense", output, target).item())


def test_normals_compare_directions_only():
    output, target = normals_case(torch.Generator().manual_seed(4))
    assert dense_loss("normals", 7.0 * output, 0.5 * target).item() == pytest.approx(dense_loss("normals", output, target).item(), rel=1e-5)
    assert dense_loss("normals", target.nan_to_num(), target).item() == pytest.approx(0.0, abs=1e-6)


def test_the_dense_types_their_default_metrics_and_the_spec():
    assert TASK_TYPES[3:] == ("segmentation", "depth", "normals", "binary_dense")
    assert {t: DEFAULT_METRIC[t] for t in TASK_TYPES[3:]} == {"segmentation": "miou", "depth": "abs_err", "normals": "mean_angle", "binary_dense": "iou"}
    spec = {"name": "d", "data": {"source": "digits"}, "backbone": {"name": "mlp"}, "families": {"tree": {}}}
    ok = parse_spec(spec | {"tasks": {"a": {"type": "depth", "metric": "rel_err"}, "b": {"type": "normals", "extra_metrics": ["within_30"]}}})
    assert ok.tasks["a"].type == "depth"
    with pytest.raises(SpecError, match="tasks.a: metric 'miou' does not fit a depth task"):
        parse_spec(spec | {"tasks": {"a": {"type": "depth", "metric": "miou"}, "b": {}}})


# --------------------------------------------------------------------------- from a folder
def folder_spec(root, tasks, **data):
    return parse_spec({
        "name": "dense", "seed": 0,
        "data": {"source": str(root), "fields": {"label": {"kind": "mask", "classes": CLASSES}}, **data},
        "tasks": tasks,
        "backbone": {"name": "resnet18", "options": {"output_stride": 8}},
        "families": {"tree": {}},
    })  # fmt: skip


DENSE_TASKS = {"seg": {"label": "label"}, "depth": {}, "normal": {}}


@pytest.fixture(scope="module")
def nyu(tmp_path_factory):
    return write_nyuv2(tmp_path_factory.mktemp("dense") / "nyuv2", n_train=8, n_val=4)


def test_a_folder_field_read_without_reduce_is_a_dense_label_of_its_kind(nyu):
    """mask -> segmentation (the mask's classes), depth -> depth, normals -> normals."""
    problem = load_problem(folder_spec(nyu, DENSE_TASKS))
    got = {t.name: (t.type, t.n_outputs, t.metric) for t in problem.tasks}
    assert got == {"seg": ("segmentation", CLASSES, "miou"), "depth": ("depth", 1, "abs_err"), "normal": ("normals", 3, "mean_angle")}
    y = problem.data.train.y
    assert y["label"].shape[1:] == (24, 32) and y["depth"].shape[1:] == (1, 24, 32) and y["normal"].shape[1:] == (3, 24, 32)
    assert all(a.dtype == np.float32 for a in y.values())


def test_a_masks_own_ignore_value_becomes_minus_one(tmp_path):
    root = write_nyuv2(tmp_path / "nyuv2", n_train=6, n_val=3)
    for path in root.glob("*/label/*.npy"):
        mask = np.load(path)
        np.save(path, np.where(mask == -1, 255, mask).astype(np.float32))
    spec = folder_spec(root, DENSE_TASKS, fields={"label": {"kind": "mask", "classes": CLASSES, "ignore": 255}})
    for in_memory in (True, False):
        data = load_problem(spec.model_copy(update={"data": spec.data.model_copy(update={"in_memory": in_memory})})).data
        labels = data.val.y["label"] if in_memory else torch.stack([data.val.samples()[i][1]["label"] for i in range(len(data.val))]).numpy()
        assert set(np.unique(labels)) <= {-1.0, *map(float, range(CLASSES))} and (labels == -1).any()


def test_a_two_class_mask_reads_as_binary_dense(tmp_path):
    root = write_nyuv2(tmp_path / "nyuv2", n_train=6, n_val=3)
    for path in root.glob("*/label/*.npy"):
        mask = np.load(path)
        np.save(path, np.where(mask >= 0, mask % 2, -1).astype(np.float32))
    spec = folder_spec(root, {"edge": {"label": "label", "type": "binary_dense", "extra_metrics": ["f_score"]}, "depth": {}},
                       fields={"label": {"kind": "mask", "classes": 2}})  # fmt: skip
    edge = load_problem(spec).tasks[0]
    assert (edge.type, edge.n_outputs, edge.metrics) == ("binary_dense", 1, ("iou", "f_score"))


def test_a_dense_task_on_a_per_sample_label_is_refused(nyu):
    with pytest.raises(SpecError, match="tasks.seg: reduce: mode makes a multiclass label, but type is 'segmentation'"):
        load_problem(folder_spec(nyu, {"seg": {"label": "label", "reduce": "mode", "type": "segmentation"}, "depth": {}}))
    spec = {"name": "d", "data": {"source": "digits", "max_samples": 100}, "backbone": {"name": "mlp"}, "families": {"tree": {}}}
    with pytest.raises(SpecError, match="tasks.digit.type: label 'digit' is multiclass; type 'segmentation' does not fit it"):
        load_problem(parse_spec(spec | {"tasks": {"digit": {"type": "segmentation"}, "odd": {}}}))


def test_a_dense_model_evaluates_the_same_batched_any_way_and_held_any_way(nyu):
    """Whole-split metrics: batch size 3 (uneven) and 16, in memory and streamed, and the metric
    functions on the whole arrays agree; fit reports them for every task."""
    from share_search.arch._base import build_model
    from share_search.arch.tree import TreeConfig
    from share_search.spec.model import TrainConfig
    from share_search.train.loop import evaluate, fit

    spec = folder_spec(nyu, DENSE_TASKS | {"normal": {"extra_metrics": ["median_angle", "within_11_25"]}, "seg": {"label": "label", "extra_metrics": ["pixel_accuracy"]}})
    problem = load_problem(spec)
    names = [t.name for t in problem.tasks]
    torch.manual_seed(0)
    model = build_model(TreeConfig(stages=[[names]] * 4), problem.backbone, problem.tasks)
    result = fit(model, problem.data, problem.tasks, TrainConfig(epochs=1, batch_size=4))
    assert {t: set(v) for t, v in result.val.items()} == {t.name: set(t.metrics) for t in problem.tasks}
    assert all(math.isfinite(v) for values in result.val.values() for v in values.values())

    split = problem.data.val
    by3 = evaluate(model, split, problem.tasks, batch_size=3)
    assert len(split) % 3 != 0
    model.eval()
    with torch.no_grad():
        outputs = model(torch.as_tensor(split.x))
    for t in problem.tasks:
        whole = t.evaluate(outputs[t.name].numpy(), split.y[t.label])
        for m, value in whole.items():
            assert by3[t.name][m] == pytest.approx(value, rel=1e-4, abs=1e-4), (t.name, m)
    streamed = load_problem(spec.model_copy(update={"data": spec.data.model_copy(update={"in_memory": False})})).data.val
    for t in problem.tasks:
        for m, value in evaluate(model, streamed, problem.tasks, batch_size=16)[t.name].items():
            assert value == pytest.approx(by3[t.name][m], rel=1e-4, abs=1e-4), (t.name, m)
