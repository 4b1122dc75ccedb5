"""B7, dense tasks: what share-search's trainer and the cross-stitch family cost on per-pixel work.

(a) **Trainer against a bare loop.** The dense demo's data (``multimnist_dense``: 36x36
inputs, segmentation, depth and edges per pixel) and network (hard sharing over the demo's
small ResNet encoder, DeepLab heads) trained for a few epochs three ways, round-robin:
share-search's ``fit`` (weighting, epoch selection, a validation pass with every per-pixel
metric after each epoch, the selected weights' validation and test metrics at the end), a
bare PyTorch loop over a ``DataLoader`` of the same tensors doing the same job with
torchmetrics (the per-pixel metrics each epoch, the best epoch's weights kept, the test
split evaluated once), and the same loop computing validation losses only (the least a loop
does: it cannot pick an epoch). Same initial weights, batch size, one torch thread. The
ratio that measures the trainer's own cost is fit over the same-job loop.

(b) **Cross-stitch on a ResNet encoder at 3 dense tasks against independent columns**:
forward + backward time of one batch (resnet18 as four stages, input 3x64x64, three
``fcn`` heads), cross-stitch units after every stage against the same columns without units.

    python benchmarks/b7_dense.py --quick
    python benchmarks/b7_dense.py --repeats 5 --json benchmarks/results/b7_dense.json
"""

from __future__ import annotations

import argparse
import copy
import sys
import time

import torch

from _common import median, median_range, print_table, write_json


def dense_problem(pairs: int, epochs: int):
    from share_search.spec.model import load_spec
    from share_search.train.problem import load_problem
    from _common import HERE

    spec = load_spec(HERE.parent / "search_spaces" / "dense.yaml")
    data = spec.model_dump(mode="json")
    data["data"]["options"] = {"pairs": {"train": pairs, "val": max(50, pairs // 6), "test": 50}}
    data["train"]["epochs"] = epochs
    from share_search.spec.model import parse_spec

    return load_problem(parse_spec(data))


def bare_loop(model, problem, batch_size: int, lr: float, epochs: int, metrics: bool) -> float:
    """A plain loop over a ``DataLoader`` of the same tensors: Adam on the summed losses.

    ``metrics=False``: each epoch's validation pass computes losses only (the least a loop
    does). ``metrics=True``: the same job as ``fit``, written the way a user writes it with
    torchmetrics: each epoch's validation pass computes the demo's per-pixel metrics (mIoU and
    pixel accuracy, depth's absolute and relative error on valid pixels, the edges' F-score and
    IoU), the best epoch's weights are kept (by the segmentation mIoU), and the test split is
    evaluated once at the end with those weights."""
    import torchmetrics.classification as tmc
    from torch.utils.data import DataLoader, TensorDataset

    tasks = problem.tasks
    by_type = {t.type: t for t in tasks}
    seg, depth, edges = by_type["segmentation"], by_type["depth"], by_type["binary_dense"]

    def loader(split, shuffle):
        tensors = [torch.as_tensor(split.x)] + [torch.as_tensor(split.y[t.label]) for t in tasks]
        return DataLoader(TensorDataset(*tensors), batch_size=batch_size, shuffle=shuffle, generator=torch.Generator().manual_seed(0))

    @torch.no_grad()
    def evaluate(split) -> float:
        model.eval()
        if not metrics:
            for x, *ys in loader(split, False):
                out = model(x)
                [t.loss(out[t.name], y).item() for t, y in zip(tasks, ys)]
            return 0.0
        jaccard = tmc.MulticlassJaccardIndex(seg.n_outputs, ignore_index=-1, average="macro")
        pixel = tmc.MulticlassAccuracy(seg.n_outputs, ignore_index=-1, average="micro")
        f1, iou = tmc.BinaryF1Score(ignore_index=-1), tmc.BinaryJaccardIndex(ignore_index=-1)
        abs_sum = rel_sum = count = 0.0
        for x, *ys in loader(split, False):
            out = model(x)
            y = dict(zip((t.name for t in tasks), ys))
            labels = y[seg.name].long()
            jaccard.update(out[seg.name], labels)
            pixel.update(out[seg.name], labels)
            target = y[depth.name].reshape(out[depth.name].shape)
            valid = target > 0
            error = (out[depth.name] - target).abs()[valid]
            abs_sum += float(error.sum())
            rel_sum += float((error / target[valid]).sum())
            count += float(valid.sum())
            edge_labels = y[edges.name].long()
            f1.update(out[edges.name].squeeze(1), edge_labels)
            iou.update(out[edges.name].squeeze(1), edge_labels)
        pixel.compute(), f1.compute(), iou.compute(), abs_sum / count, rel_sum / count
        return float(jaccard.compute())

    started = time.perf_counter()
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    best, kept = -1.0, None
    for _ in range(epochs):
        model.train()
        for x, *ys in loader(problem.data.train, True):
            out = model(x)
            loss = sum(t.loss(out[t.name], y) for t, y in zip(tasks, ys))
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
        score = evaluate(problem.data.val)
        if metrics and score > best:
            best, kept = score, {k: v.detach().clone() for k, v in model.state_dict().items()}
    if metrics:
        model.load_state_dict(kept)
        evaluate(problem.data.test)
    return time.perf_counter() - started


def trainer_run(model, problem, config) -> float:
    from share_search.train.loop import fit

    started = time.perf_counter()
    fit(model, problem.data, problem.tasks, config)
    return time.perf_counter() - started


def part_a(repeats: int, pairs: int, epochs: int) -> dict:
    from share_search.arch import build_model
    from share_search.space.spaces import default_train_values, reference_archs, train_config

    problem = dense_problem(pairs, epochs)
    config = train_config(problem.spec, default_train_values(problem.spec))
    hard = reference_archs(problem)[1][1]
    torch.manual_seed(0)
    template = build_model(hard, problem.backbone, problem.tasks)
    arms = {
        "share-search fit": lambda: trainer_run(copy.deepcopy(template), problem, config),
        "bare loop, same job": lambda: bare_loop(copy.deepcopy(template), problem, config.batch_size, config.lr, epochs, metrics=True),
        "bare loop, losses only": lambda: bare_loop(copy.deepcopy(template), problem, config.batch_size, config.lr, epochs, metrics=False),
    }
    for arm in arms.values():
        arm()  # warm-up, not timed: the first run of each in a process pays one-time set-up
    times: dict[str, list[float]] = {name: [] for name in arms}
    for _ in range(repeats):
        for name, arm in arms.items():
            times[name].append(arm())
    fit = times["share-search fit"]
    return {"train_samples": len(problem.data.train), "val_samples": len(problem.data.val), "test_samples": len(problem.data.test),
            "batch_size": config.batch_size, "epochs": epochs, "seconds": times,
            "ratio_fit_over_same_job": [a / b for a, b in zip(fit, times["bare loop, same job"])],
            "ratio_fit_over_losses_only": [a / b for a, b in zip(fit, times["bare loop, losses only"])]}


def part_b(repeats: int, batch: int) -> dict:
    from share_search.arch import build_model
    from share_search.arch.backbones import make_backbone
    from share_search.arch.cross_stitch import CrossStitchConfig
    from share_search.arch.tree import TreeConfig
    from share_search.train.tasks import Task

    tasks = [Task("seg", "seg", "segmentation", 5, "miou", head="fcn"), Task("depth", "depth", "depth", 1, "abs_err", head="fcn"),
             Task("edges", "edges", "binary_dense", 1, "f_score", head="fcn")]
    names = [t.name for t in tasks]
    backbone = make_backbone("resnet18", (3, 64, 64), {})
    torch.manual_seed(0)
    nets = {
        "independent columns": build_model(TreeConfig.independent(names, backbone.n_stages), backbone, tasks),
        "cross-stitch after every stage": build_model(CrossStitchConfig(stages=tuple(range(backbone.n_stages))), backbone, tasks),
    }
    x = torch.randn(batch, 3, 64, 64)
    y = {"seg": torch.randint(0, 5, (batch, 64, 64)).float(), "depth": torch.rand(batch, 1, 64, 64) + 0.1,
         "edges": (torch.rand(batch, 64, 64) > 0.9).float()}

    def step(net) -> float:
        started = time.perf_counter()
        out = net(x)
        sum(t.loss(out[t.name], y[t.name]) for t in tasks).backward()
        net.zero_grad(set_to_none=True)
        return time.perf_counter() - started

    for net in nets.values():
        step(net)  # warm-up
    times = {name: [] for name in nets}
    for _ in range(repeats):
        for name, net in nets.items():
            times[name].append(median([step(net) for _ in range(3)]))
    ratios = [c / i for c, i in zip(times["cross-stitch after every stage"], times["independent columns"])]
    return {"batch": batch, "seconds": times, "ratio_cross_stitch_over_columns": ratios}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="few samples, 1 repeat")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--epochs", type=int, default=3, help="epochs per run in (a)")
    ap.add_argument("--json", help="where to write the result JSON")
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    repeats = 1 if args.quick else args.repeats
    a = part_a(repeats, 200 if args.quick else 1200, 1 if args.quick else args.epochs)
    b = part_b(repeats, 4 if args.quick else 16)
    print_table(
        f"B7 (a) {a['epochs']} epoch(s) of the dense demo's hard sharing ({a['train_samples']} train, {a['val_samples']} val, "
        f"{a['test_samples']} test, batch {a['batch_size']}), {repeats} round(s), median (range)",
        ["arm", "seconds"],
        [*[[name, median_range(v)] for name, v in a["seconds"].items()],
         ["fit / bare loop, same job", median_range(a["ratio_fit_over_same_job"], 3)],
         ["fit / bare loop, losses only", median_range(a["ratio_fit_over_losses_only"], 3)]],
    )
    print_table(
        f"B7 (b) forward+backward of one batch of {b['batch']} (resnet18 stages, 3x64x64, 3 dense fcn heads), median (range)",
        ["network", "seconds"],
        [*[[name, median_range(v, 3)] for name, v in b["seconds"].items()], ["cross-stitch / columns", median_range(b["ratio_cross_stitch_over_columns"], 3)]],
    )
    write_json("b7_dense" + ("_quick" if args.quick else ""), {"repeats": repeats, "a": a, "b": b}, args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
