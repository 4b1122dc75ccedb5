"""B2: what each sharing family costs, against the independent single-task columns.

For 2, 3 and 5 tasks on the ``convnet`` and ``mlp`` backbones (built-in defaults, a
28x28 grey input as in MultiMNIST, ten-way heads), every network is built with
``share_search.arch.build_model`` and measured two ways:

- MACs per sample: ``share_search.arch._cost.count_macs`` (the count the tool stores
  per trial), and for trees the prediction from unique nodes,
  Σ_stages (groups at the stage x MACs of that stage) + heads.
- forward+backward wall time of one batch (64 samples unless `--batch`, one torch thread): the whole
  network with every parameter trainable, loss = Σ_tasks cross-entropy. Progressive
  networks train one column per phase, so their training pays this per phase with only
  part of the backward; the figure here is the whole-network step.

The cross-stitch network is measured twice more: with its units removed, its columns
alone, which separates what the units add from how the columns run (stacked on linear
stages, copy by copy elsewhere); and with every stage's copies run in a loop, no stage
stacked, which measures the stacking side by side.

Timing is round-robin: every round times each network once (a few batches), and the
median over rounds is reported, so load from other work on the machine hits all
networks alike. Ratios are taken against the independent columns of the same backbone
and task count, measured in the same rounds.

    python benchmarks/b2_family_cost.py --quick   # < 1 min
    python benchmarks/b2_family_cost.py           # 15 rounds
    python benchmarks/b2_family_cost.py --backbone mlp --batch 256 --json benchmarks/results/b2_mlp_batch256.json
"""

from __future__ import annotations

import argparse
import sys
import time
from contextlib import contextmanager

import numpy as np
import torch

from _common import median, print_table, write_json

INPUT = (1, 28, 28)
BATCH = 64
TASK_COUNTS = (2, 3, 5)
BACKBONES = ("convnet", "mlp")
CROSS_STITCH = "cross_stitch: units after every stage"
COLUMNS_ONLY = "cross_stitch's columns alone, units removed"  # what the units themselves add
COPY_BY_COPY = "cross_stitch, every stage's copies in a loop"  # no stage stacked: measures what stacking gains


def tasks_of(n: int):
    from share_search.train.tasks import Task

    return [Task(name=f"t{i}", label=f"t{i}", type="multiclass", n_outputs=10, metric="accuracy") for i in range(n)]


def networks(backbone, names: list[str]) -> dict[str, object]:
    """The architectures measured per (backbone, task count)."""
    from share_search.arch.cross_stitch import CrossStitchConfig
    from share_search.arch.progressive import ProgressiveConfig
    from share_search.arch.tree import TreeConfig

    s = backbone.n_stages
    whole = (tuple(names),)
    singles = tuple((t,) for t in names)
    halves = (tuple(names[: len(names) // 2]), tuple(names[len(names) // 2 :]))
    return {
        "independent columns": TreeConfig.independent(names, s),
        "tree: hard sharing": TreeConfig.hard_sharing(names, s),
        "tree: shared stage 0, then split": TreeConfig(stages=(whole,) + (singles,) * (s - 1)),
        "tree: shared stage 0, then 2 groups": TreeConfig(stages=(whole,) + (halves,) * (s - 1)),
        "tree: 2 groups, then split": TreeConfig(stages=(whole,) * (s - 2) + (halves, singles)),
        CROSS_STITCH: CrossStitchConfig(stages=tuple(range(s))),
        COLUMNS_ONLY: CrossStitchConfig(stages=tuple(range(s))),
        COPY_BY_COPY: CrossStitchConfig(stages=tuple(range(s))),
        "progressive: adapter laterals, every stage": ProgressiveConfig(order=tuple(names), lateral_stages=tuple(range(1, s)), lateral="adapter"),
        "progressive: linear laterals, every stage": ProgressiveConfig(order=tuple(names), lateral_stages=tuple(range(1, s)), lateral="linear"),
    }


@contextmanager
def columns_copy_by_copy(enabled: bool):
    """Build cross-stitch networks whose stages all run copy by copy: no stage stacked."""
    from share_search.arch import cross_stitch
    from share_search.arch._stacked import LoopedStage

    saved = cross_stitch.stack_stage
    if enabled:
        cross_stitch.stack_stage = LoopedStage
    try:
        yield
    finally:
        cross_stitch.stack_stage = saved


def predicted_tree_macs(config, stage_macs: list[int], head_macs: int, n_tasks: int) -> int:
    return sum(len(partition) * stage_macs[i] for i, partition in enumerate(config.stages)) + n_tasks * head_macs


def unique_nodes(config) -> int:
    return sum(len(partition) for partition in config.stages)


def measure(rounds: int, per_round: int, batch: int = BATCH, backbones: tuple[str, ...] = BACKBONES) -> list[dict]:
    from share_search.arch import build_model
    from share_search.arch._cost import count_macs, count_parameters
    from share_search.arch.backbones import make_backbone, make_head

    torch.set_num_threads(1)
    torch.manual_seed(0)
    x = torch.rand(batch, *INPUT)
    rows: list[dict] = []
    for bb_name in backbones:
        backbone = make_backbone(bb_name, INPUT)
        stages = backbone.build_stages()
        stage_macs = [count_macs(stage, backbone.stage_input_shape(i)) for i, stage in enumerate(stages)]
        head_macs = count_macs(make_head(backbone.output_shape, 10), backbone.output_shape)
        for n in TASK_COUNTS:
            tasks = tasks_of(n)
            names = [t.name for t in tasks]
            y = {t: torch.randint(0, 10, (batch,)) for t in names}
            built = {}
            for label, config in networks(backbone, names).items():
                with columns_copy_by_copy(label == COPY_BY_COPY):
                    model = build_model(config, backbone, tasks)
                if label == COLUMNS_ONLY:
                    model.alphas = torch.nn.ParameterDict()
                model.train()
                row = {
                    "backbone": bb_name, "tasks": n, "network": label, "arch": config.summary(),
                    "params": count_parameters(model), "macs": count_macs(model, INPUT), "times_ms": [],
                }
                if config.family == "tree":
                    row["unique_nodes"] = unique_nodes(config)
                    row["predicted_macs"] = predicted_tree_macs(config, stage_macs, head_macs, n)
                built[label] = (model, row)
                for _ in range(2):  # warm-up (allocator and oneDNN caches)
                    step(model, x, y)
            for _ in range(rounds):
                for label, (model, row) in built.items():
                    started = time.perf_counter()
                    for _ in range(per_round):
                        step(model, x, y)
                    row["times_ms"].append(1000 * (time.perf_counter() - started) / per_round)
            base = built["independent columns"][1]
            for label, (model, row) in built.items():
                # per-round ratio, then the median: both networks felt the same load in a round
                row["time_vs_independent"] = median(a / b for a, b in zip(row["times_ms"], base["times_ms"]))
                row["ms"] = median(row["times_ms"])
                row["macs_vs_independent"] = row["macs"] / base["macs"]
                rows.append(row)
            print(f"  {bb_name}, {n} tasks: done", flush=True)
    return rows


def step(model, x, y) -> None:
    model.zero_grad(set_to_none=True)
    out = model(x)
    loss = sum(torch.nn.functional.cross_entropy(out[t], y[t]) for t in y)
    loss.backward()


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="5 rounds of 3 batches instead of 15 of 10")
    ap.add_argument("--batch", type=int, default=BATCH, help=f"samples per batch (default {BATCH})")
    ap.add_argument("--backbone", action="append", choices=BACKBONES, help="measure only this backbone (repeatable; default both)")
    ap.add_argument("--json", help="where to write the result JSON")
    args = ap.parse_args(argv)
    rounds, per_round = (5, 3) if args.quick else (15, 10)
    started = time.perf_counter()
    rows = measure(rounds, per_round, args.batch, tuple(args.backbone or BACKBONES))
    print_table(
        f"B2 cost per network (batch {args.batch}, one thread; fwd+bwd median over {rounds} rounds of {per_round} batches; "
        "ratios against independent columns)",
        ["backbone", "T", "network", "kMACs/sample", "MACs ratio", "tree: unique nodes", "tree: MACs = prediction", "params", "fwd+bwd ms", "time ratio"],
        [
            [r["backbone"], r["tasks"], r["network"], r["macs"] / 1000, r["macs_vs_independent"], r.get("unique_nodes", ""),
             ("yes" if r["macs"] == r["predicted_macs"] else f"no ({r['predicted_macs']})") if "predicted_macs" in r else "",
             r["params"], r["ms"], r["time_vs_independent"]]
            for r in rows
        ],
    )
    trees = [r for r in rows if "predicted_macs" in r]
    cs = [r for r in rows if r["network"] == CROSS_STITCH]

    def per_cell(network: str, key: str = "time_vs_independent") -> dict[str, float]:
        return {f"{r['backbone']}/{r['tasks']}": r[key] for r in rows if r["network"] == network}

    # time follows unique nodes: compare each tree's time ratio with its MAC ratio
    fit = np.corrcoef([r["macs_vs_independent"] for r in trees], [r["time_vs_independent"] for r in trees])[0, 1]
    checks = {
        "tree_macs_equal_unique_node_prediction": all(r["macs"] == r["predicted_macs"] for r in trees),
        "tree_time_ratio_vs_macs_ratio_correlation": float(fit),
        "hard_sharing_macs_over_independent": per_cell("tree: hard sharing", "macs_vs_independent"),
        "hard_sharing_time_over_independent": per_cell("tree: hard sharing"),
        "cross_stitch_time_over_independent": per_cell(CROSS_STITCH),
        "cross_stitch_macs_over_independent": per_cell(CROSS_STITCH, "macs_vs_independent"),
        "cross_stitch_columns_alone_time_over_independent": per_cell(COLUMNS_ONLY),
        "cross_stitch_copy_by_copy_time_over_independent": per_cell(COPY_BY_COPY),
        "cross_stitch_at_most_1_25x": all(r["time_vs_independent"] <= 1.25 and r["macs_vs_independent"] <= 1.25 for r in cs),
    }
    print_table(
        "B2 checks",
        ["check", "result"],
        [
            ["tree MACs = Σ unique nodes' stage MACs + heads (all trees)", checks["tree_macs_equal_unique_node_prediction"]],
            ["tree time ratio vs MAC ratio, correlation", checks["tree_time_ratio_vs_macs_ratio_correlation"]],
            ["hard sharing time / independent (min-max)", "%.2f-%.2f" % (min(checks["hard_sharing_time_over_independent"].values()), max(checks["hard_sharing_time_over_independent"].values()))],
            ["cross-stitch time / independent (max)", max(checks["cross_stitch_time_over_independent"].values())],
            ["cross-stitch MACs / independent (max)", max(checks["cross_stitch_macs_over_independent"].values())],
            ["cross-stitch's columns alone, time / independent (min-max)", "%.2f-%.2f" % (min(checks["cross_stitch_columns_alone_time_over_independent"].values()), max(checks["cross_stitch_columns_alone_time_over_independent"].values()))],
            ["cross-stitch <= 1.25x independent (time and MACs)", checks["cross_stitch_at_most_1_25x"]],
        ],
        digits=3,
    )
    write_json(
        "b2_family_cost" + ("_quick" if args.quick else ""),
        {"mode": "quick" if args.quick else "full", "batch": args.batch, "input": INPUT, "rounds": rounds, "batches_per_round": per_round,
         "rows": rows, "checks": checks, "seconds": time.perf_counter() - started},
        args.json,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
