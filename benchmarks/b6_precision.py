"""B6: seconds per training epoch of a convnet on the CPU, fp32 against bf16 autocast (``train.precision``).

The MultiMNIST demo's network (``search_spaces/mtl.yaml``: a two-stage convnet, four tasks,
hard sharing) and, as a wider one, the same with 32 and 64 channels, trained by ``fit`` on
the CPU for a few epochs per arm. The arms alternate within each repeat (``alternating``),
so the machine's drift hits both alike; the first epoch of every fit is left out (warm-up).
Reported: the median (range) over repeats of each arm's median epoch time, and bf16 / fp32.
Whether bf16 pays on a CPU depends on its bfloat16 support (AVX-512 BF16 or AMX); without
it PyTorch emulates the casts and bf16 is slower. On a GPU bf16 and fp16 use tensor cores.

    python benchmarks/b6_precision.py --quick        # 1 repeat, small data (checks the script)
    python benchmarks/b6_precision.py --json benchmarks/results/b6_precision.json   # 3 repeats, ~3 min
"""

from __future__ import annotations

import argparse
import statistics
import time

from _common import alternating, median_range, print_table, write_json

ARMS = ("fp32", "bf16")
NETWORKS = {"demo convnet [8, 16]": {"channels": [8, 16], "hidden": 32}, "wider convnet [32, 64]": {"channels": [32, 64], "hidden": 64}}


def epoch_times(problem, options: dict, precision: str, epochs: int) -> list[float]:
    """Seconds of each epoch after the first, from the times of ``fit``'s reports."""
    import torch

    from share_search.arch import build_model
    from share_search.arch.backbones import make_backbone
    from share_search.arch.tree import TreeConfig
    from share_search.train.loop import TrainConfig, fit

    backbone = make_backbone("convnet", problem.backbone.input_shape, options)
    torch.manual_seed(0)
    model = build_model(TreeConfig.hard_sharing(problem.task_names, backbone.n_stages), backbone, problem.tasks)
    stamps = [time.perf_counter()]
    config = TrainConfig(lr=0.003, epochs=epochs, batch_size=64, device="cpu", threads=1, precision=precision)
    fit(model, problem.data, problem.tasks, config, report=lambda ep: stamps.append(time.perf_counter()))
    return [b - a for a, b in zip(stamps[1:], stamps[2:])]  # each epoch includes its validation


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--json")
    args = parser.parse_args()

    from share_search.spec.model import parse_spec
    from share_search.train.problem import load_problem

    pairs = {"train": 300, "val": 100, "test": 100} if args.quick else {"train": 3000, "val": 1000, "test": 1000}
    spec = parse_spec({"name": "b6", "data": {"source": "multimnist", "options": {"pairs": pairs}},
                       "tasks": {t: {"metric": "accuracy"} for t in ("left", "right", "left_odd", "right_odd")},
                       "backbone": {"name": "convnet", "options": NETWORKS["demo convnet [8, 16]"]}, "families": {"tree": {}}})
    problem = load_problem(spec)
    repeats = 1 if args.quick else args.repeats
    times: dict[tuple[str, str], list[float]] = {(n, a): [] for n in NETWORKS for a in ARMS}
    for network, options in NETWORKS.items():
        for _, arm in alternating(ARMS, repeats):
            times[network, arm].append(statistics.median(epoch_times(problem, options, arm, args.epochs)))
    rows = []
    for network in NETWORKS:
        ratios = [b / f for f, b in zip(times[network, "fp32"], times[network, "bf16"])]
        rows.append([network, median_range(times[network, "fp32"]), median_range(times[network, "bf16"]), median_range(ratios)])
    print_table(f"B6: seconds per epoch on the CPU ({pairs['train']} training pairs, batch 64, 1 thread), median (range) over {repeats} repeat(s)",
                ["network", "fp32", "bf16", "bf16 / fp32"], rows)
    if args.json:
        write_json("b6_precision", {"pairs": pairs, "epochs": args.epochs, "repeats": repeats,
                                    "seconds_per_epoch": {f"{n} {a}": v for (n, a), v in times.items()}}, args.json)


if __name__ == "__main__":
    main()
