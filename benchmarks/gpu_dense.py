"""Dense tasks on a GPU: precision modes, and trials per minute with several trials on one GPU (not run yet).

(a) **Precision.** A ResNet-18 encoder (four stages) with three dense DeepLab heads
(13-class segmentation, depth, normals) at NYUv2's resolution (3 x 288 x 384), hard sharing,
batch 8: one optimizer step (forward, the three losses, backward, Adam) timed in fp32, bf16
and fp16 (``train.precision``: autocast, a GradScaler for fp16) round-robin, with each mode's
peak GPU memory.

(b) **Packing.** A folder in the NYUv2 layout (random values, ``--samples`` of them, written
to a temporary folder) searched with the same network family at ``resources.gpu`` 1, 1/2 and
1/4 per trial (concurrency 1, 2, 4: Ray packs fractional trials on the one GPU), one epoch
per trial: trials per minute.

    python benchmarks/gpu_dense.py                      # ~10 min on one recent GPU
    python benchmarks/gpu_dense.py --device cpu --quick # a dry run of the script without a GPU

Prints two tables and writes ``benchmarks/results/gpu_dense.json``; copy them into
``benchmarks/README.md``. Needs a CUDA build of PyTorch.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path


from _common import gpu_missing, median, median_range, print_table, write_json, write_nyuv2_folder

DEVICE = "cuda"
SIZE = (288, 384)


def tasks():
    from share_search.train.tasks import Task

    return [Task("segmentation", "label", "segmentation", 13, "miou"), Task("depth", "depth", "depth", 1, "abs_err"),
            Task("normal", "normal", "normals", 3, "mean_angle")]


def precision_modes(size, batch: int, rounds: int) -> dict:
    import torch

    from share_search.arch import build_model
    from share_search.arch.backbones import make_backbone
    from share_search.arch.tree import TreeConfig
    from share_search.train.precision import Precision

    h, w = size
    ts = tasks()
    backbone = make_backbone("resnet18", (3, h, w), {"output_stride": 16})
    x = torch.randn(batch, 3, h, w, device=DEVICE)
    y = {"label": torch.randint(-1, 13, (batch, h, w), device=DEVICE).float(),
         "depth": torch.rand(batch, 1, h, w, device=DEVICE) + 0.1,
         "normal": torch.nn.functional.normalize(torch.randn(batch, 3, h, w, device=DEVICE), dim=1)}
    modes = ["fp32", "bf16"] + (["fp16"] if DEVICE == "cuda" else [])
    nets, opts, precs = {}, {}, {}
    for mode in modes:
        torch.manual_seed(0)
        nets[mode] = build_model(TreeConfig.hard_sharing([t.name for t in ts], backbone.n_stages), backbone, ts).to(DEVICE)
        opts[mode] = torch.optim.Adam(nets[mode].parameters(), lr=1e-4)
        precs[mode] = Precision(mode, torch.device(DEVICE))

    def step(mode: str) -> float:
        sync = torch.cuda.synchronize if DEVICE == "cuda" else (lambda: None)
        sync()
        started = time.perf_counter()
        with precs[mode].autocast():
            out = nets[mode](x)
        loss = sum(t.loss(out[t.name].float(), y[t.label]) for t in ts)
        opts[mode].zero_grad(set_to_none=True)
        precs[mode].loss_scale.backward(loss)
        precs[mode].step(opts[mode], list(nets[mode].parameters()), None)
        sync()
        return time.perf_counter() - started

    times = {m: [] for m in modes}
    peak = {}
    for mode in modes:
        step(mode)  # warm-up
        if DEVICE == "cuda":
            torch.cuda.reset_peak_memory_stats()
        step(mode)
        peak[mode] = torch.cuda.max_memory_allocated() / 2**20 if DEVICE == "cuda" else None
    for _ in range(rounds):
        for mode in modes:
            times[mode].append(step(mode))
    return {"batch": batch, "size": list(size), "seconds_per_step": times, "peak_mb": peak}


def packing(folder: Path, fraction: float, trials: int, precision: str) -> dict:
    from share_search.engine.runner import run_search
    from share_search.spec.model import parse_spec

    concurrency = max(1, round(1 / fraction))
    spec = parse_spec({
        "name": "gpu-dense", "seed": 0,
        "data": {"source": str(folder), "fields": {"label": {"kind": "mask", "classes": 13}}, "in_memory": True},
        "tasks": {"segmentation": {"label": "label"}, "depth": {"label": "depth"}, "normal": {"label": "normal"}},
        "backbone": {"name": "resnet18", "options": {"output_stride": 16}},
        "families": {"tree": {}, "cross_stitch": {}},
        "train": {"epochs": 1, "batch_size": 8, "lr": 1e-4, "device": DEVICE, "precision": precision},
        "search": {"sampler": "random", "trials": trials, "concurrency": concurrency, "export_top": 0,
                   "resources": {"cpu": 1, "gpu": fraction if DEVICE == "cuda" else 0}},
    })
    out = Path(tempfile.mkdtemp(prefix="gpu-dense-")) / "run"
    try:
        started = time.perf_counter()
        outcome = run_search(spec, out, show_progress=False)
        wall = time.perf_counter() - started
        done = outcome.counts.get("complete", 0)
        return {"gpu_per_trial": fraction, "concurrency": concurrency, "wall_s": wall, "complete": done,
                "failed": outcome.counts.get("failed", 0), "trials_per_min": 60 * done / wall}
    finally:
        shutil.rmtree(out.parent, ignore_errors=True)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--device", choices=["cuda", "cpu"], default="cuda", help="cpu: a dry run without a GPU")
    ap.add_argument("--quick", action="store_true", help="small images, few samples and trials (to check the script)")
    ap.add_argument("--samples", type=int, default=200, help="training samples in the packing folder")
    ap.add_argument("--trials", type=int, default=8, help="trials per packing search, references included")
    ap.add_argument("--fractions", type=float, nargs="+", default=[1.0, 0.5, 0.25])
    ap.add_argument("--precision", default="bf16", help="train.precision of the packing searches")
    ap.add_argument("--json", help="where to write the result JSON")
    args = ap.parse_args(argv)
    global DEVICE
    DEVICE = args.device
    if gpu_missing(DEVICE):
        return 2
    import torch

    size = (72, 96) if args.quick else SIZE
    a = precision_modes(size, 2 if args.quick else 8, 2 if args.quick else 10)
    work = Path(tempfile.mkdtemp(prefix="gpu-dense-data-"))
    try:
        n = 16 if args.quick else args.samples
        write_nyuv2_folder(work / "nyu", n, max(8, n // 5), size)
        trials = 4 if args.quick else args.trials
        rows = [packing(work / "nyu", f, trials, args.precision if DEVICE == "cuda" else "fp32")
                for f in args.fractions]
    finally:
        shutil.rmtree(work, ignore_errors=True)
    device_name = torch.cuda.get_device_name(0) if DEVICE == "cuda" else "CPU dry run"
    fp32 = median(a["seconds_per_step"]["fp32"])
    print_table(
        f"GPU dense (a): resnet18 (output stride 16) + 3 DeepLab heads, {a['size'][0]}x{a['size'][1]}, batch {a['batch']}, {device_name}",
        ["precision", "s per step, median (range)", "vs fp32", "peak GPU MB"],
        [[m, median_range(v, 4), median(v) / fp32, a["peak_mb"][m]] for m, v in a["seconds_per_step"].items()],
    )
    print_table(
        f"GPU dense (b): trials per minute, {trials} trials of one epoch per search, precision {args.precision if DEVICE == 'cuda' else 'fp32'}",
        ["gpu per trial", "concurrency", "wall s", "complete", "failed", "trials/min", "vs gpu 1"],
        [[r["gpu_per_trial"], r["concurrency"], r["wall_s"], r["complete"], r["failed"], r["trials_per_min"],
          r["trials_per_min"] / rows[0]["trials_per_min"]] for r in rows],
    )
    write_json("gpu_dense" if DEVICE == "cuda" else "gpu_dense_cpu_dry_run", {"device": DEVICE, "precision": a, "packing": rows}, args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
