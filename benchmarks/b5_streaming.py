"""B5: time per epoch of a folder source held in memory against streamed from disk with 0, 1, 2 loader workers.

One folder in the NYUv2 layout (``{split}/{field}/{index}.npy``, channels last: image
float32 (H, W, 3), label (H, W) in 13 classes, depth (H, W, 1), normal (H, W, 3)) with
train/ and val/; three image-level tasks reduced from the fields (the most frequent class,
mean depth, mean normal). The same network (hard sharing: one convnet, three heads, the
cheapest network per sample, so reading weighs most) trains with ``fit`` four ways in every
repeat, round-robin, the arms' order turning each repeat: the folder read once into arrays
(``data.in_memory: true``, today's tensor path), and streamed through the DataLoader with
``num_workers`` 0, 1 and 2. One torch thread, as a trial uses by default; one warm-up fit
before the repeats.

An epoch's time is the wall time between two epoch reports of ``fit`` (training and the
validation pass); the first epoch is reported apart (it starts the loader workers). The
files are read from the page cache after the first pass, so this measures decoding and
batching, not a disk. Medians and ranges over repeats; ratios against the in-memory epoch
of the same repeat.

    python benchmarks/b5_streaming.py --quick                      # tiny, one repeat
    python benchmarks/b5_streaming.py --json benchmarks/results/b5_streaming.json
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from _common import HERE, median, median_range, print_table, write_json, write_nyuv2_folder

sys.path.insert(0, str(HERE.parent))

ARMS = ("memory", "stream-0", "stream-1", "stream-2")
CLASSES = 13


def spec_for(root: Path, arm: str, args):
    from share_search.spec.model import parse_spec

    workers = 0 if arm == "memory" else int(arm.split("-")[1])
    return parse_spec({
        "name": "b5",
        "seed": 0,
        "data": {
            "source": str(root), "fields": {"label": {"kind": "mask", "classes": CLASSES}},
            "in_memory": arm == "memory", "val_fraction": 0.2, "loader": {"num_workers": workers},
        },
        "tasks": {"scene": {"label": "label", "reduce": "mode"}, "depth": {"label": "depth", "reduce": "mean"}, "normal": {"label": "normal", "reduce": "mean"}},
        "backbone": {"name": "convnet", "options": {"channels": args.channels, "hidden": 32}},
        "families": {"tree": {}},
        "search": {"resources": {"cpu": workers + 1}},
    })  # fmt: skip


def one_fit(root: Path, arm: str, args) -> dict:
    import torch

    from share_search.arch import build_model
    from share_search.space.spaces import reference_archs
    from share_search.spec.model import TrainConfig
    from share_search.train.loop import fit
    from share_search.train.problem import load_problem

    started = time.perf_counter()
    problem = load_problem(spec_for(root, arm, args))
    loaded = time.perf_counter() - started
    torch.manual_seed(0)
    model = build_model(reference_archs(problem)[1][1], problem.backbone, problem.tasks)  # hard sharing
    stamps = []
    begin = time.perf_counter()
    fit(model, problem.data, problem.tasks, TrainConfig(epochs=args.epochs, batch_size=args.batch_size, seed=0),
        report=lambda ep: stamps.append(time.perf_counter()))  # fmt: skip
    epochs = np.diff([begin, *stamps]).tolist()
    return {"load_s": loaded, "first_epoch_s": epochs[0], "epoch_s": median(epochs[1:]) if len(epochs) > 1 else epochs[0], "epochs_s": epochs}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="tiny data, 1 repeat")
    parser.add_argument("--train", type=int, default=400)
    parser.add_argument("--val", type=int, default=100)
    parser.add_argument("--size", default="96x128", help="H x W of every image")
    parser.add_argument("--channels", type=int, nargs="+", default=[16, 32])
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--json", default=None)
    args = parser.parse_args()
    if args.quick:
        args.train, args.val, args.size, args.epochs, args.repeats = 48, 12, "24x32", 2, 1
    size = tuple(int(v) for v in args.size.split("x"))

    import torch

    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory(prefix="b5-") as folder:
        measure(Path(folder) / "nyu", args, size)


def measure(root: Path, args, size: tuple[int, int]) -> None:
    on_disk = write_nyuv2_folder(root, args.train, args.val, size)
    print(f"folder: {root}, {args.train} train + {args.val} val samples of {size[0]}x{size[1]}, {on_disk / 2**20:.0f} MB on disk", flush=True)
    one_fit(root, "memory", argparse.Namespace(**{**vars(args), "epochs": 1}))  # warm-up: torch's first calls
    runs: dict[str, list[dict]] = {arm: [] for arm in ARMS}
    for repeat in range(args.repeats):
        turn = repeat % len(ARMS)
        for arm in ARMS[turn:] + ARMS[:turn]:
            result = one_fit(root, arm, args)
            runs[arm].append(result)
            print(f"repeat {repeat + 1}, {arm}: epoch {result['epoch_s']:.2f} s, first {result['first_epoch_s']:.2f} s, load {result['load_s']:.2f} s", flush=True)
    base = [r["epoch_s"] for r in runs["memory"]]
    rows = []
    for arm in ARMS:
        epoch = [r["epoch_s"] for r in runs[arm]]
        rows.append([
            arm, median_range(epoch), median_range([e / b for e, b in zip(epoch, base)]),
            median_range([r["first_epoch_s"] for r in runs[arm]]), median_range([r["load_s"] for r in runs[arm]]),
        ])  # fmt: skip
    print_table(
        f"B5: seconds per epoch, {args.train} train + {args.val} val samples of {size[0]}x{size[1]}, convnet {args.channels}, "
        f"batch {args.batch_size}, {args.repeats} repeats (median (range))",
        ["arm", "epoch s", "epoch / in memory", "first epoch s", "load s"], rows,
    )  # fmt: skip
    if args.json:
        write_json("b5_streaming", {"args": {**vars(args), "size": list(size)}, "on_disk_bytes": on_disk, "runs": runs}, args.json)


if __name__ == "__main__":
    main()
