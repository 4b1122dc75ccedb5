"""B1 on a GPU: trials per minute with 1, 1/2 and 1/4 of a GPU per trial (not run yet).

The default demo (``search_spaces/mtl.yaml``) is run three times on one GPU, changing only
``search.resources.gpu`` (1, 0.5, 0.25) and ``search.concurrency`` with it (1, 2, 4 trials
at once; Ray packs fractional trials onto the one GPU), ``train.device: cuda``, and a fresh
run folder each time. Before the three searches, the same spec's first architectures are
trained by a bare loop on the GPU (``train.loop.fit``, no Ray) to give the sequential limit.

    python benchmarks/gpu_b1.py            # ~5 min on one recent GPU
    python benchmarks/gpu_b1.py --trials 24 --fractions 1 0.5 0.25

Prints a table and writes ``benchmarks/results/gpu_b1.json``; copy the table into
``benchmarks/README.md``. Needs a CUDA build of PyTorch. ``--device cpu`` runs the same
script without a GPU (fractional GPUs then become CPU trials) to check it before a device run.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

from _common import HERE, gpu_missing, median, print_table, write_json

SPEC = HERE.parent / "search_spaces" / "mtl.yaml"


DEVICE = "cuda"


def spec_for(fraction: float, trials: int):
    from share_search.spec.model import load_spec, parse_spec

    data = load_spec(SPEC).to_dict()
    data["train"]["device"] = DEVICE
    data["search"].update(resources={"cpu": 1, "gpu": fraction if DEVICE == "cuda" else 0}, concurrency=max(1, round(1 / fraction)), trials=trials, export_top=0)
    return parse_spec(data)


def bare(n: int) -> list[float]:
    """Sequential bare loop on the GPU over the spec's first ``n`` trees (build + fit)."""
    import torch

    from share_search.arch import build_model
    from share_search.spec.registry import FAMILY_SPACES
    from share_search.train.problem import load_problem
    from share_search.space.spaces import default_train_values, train_config
    from share_search.train.loop import fit

    sync = torch.cuda.synchronize if DEVICE == "cuda" else (lambda: None)

    spec = spec_for(1, n)
    problem = load_problem(spec)
    trees = FAMILY_SPACES["tree"].enumerate(problem.task_names, problem.backbone.n_stages, spec.families["tree"])[:n]
    config = train_config(spec, default_train_values(spec))
    times = []
    for arch in trees:
        sync()
        started = time.perf_counter()
        model = build_model(arch, problem.backbone, problem.tasks)
        fit(model, problem.data, problem.tasks, config)
        sync()
        times.append(time.perf_counter() - started)
    return times


def search(fraction: float, trials: int) -> dict:
    from share_search.engine.runner import run_search
    from share_search.runs.study import load_run_study

    out = Path(tempfile.mkdtemp(prefix="gpu-b1-")) / "run"
    try:
        started = time.perf_counter()
        outcome = run_search(spec_for(fraction, trials), out, show_progress=False)
        wall = time.perf_counter() - started
        study, _ = load_run_study(out)
        times = [t.user_attrs["time_s"] for t in study.trials if t.user_attrs.get("time_s") is not None]
        done = outcome.counts.get("complete", 0)
        return {"gpu_per_trial": fraction, "concurrency": max(1, round(1 / fraction)), "wall_s": wall, "complete": done,
                "failed": outcome.counts.get("failed", 0), "trials_per_min": 60 * done / wall,
                "median_trial_s": median(times), "sum_trial_s": sum(times)}
    finally:
        shutil.rmtree(out.parent, ignore_errors=True)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--trials", type=int, default=16, help="trials per search, references included (default 16)")
    ap.add_argument("--fractions", type=float, nargs="+", default=[1.0, 0.5, 0.25])
    ap.add_argument("--bare", type=int, default=6, help="architectures in the bare GPU loop (0: skip)")
    ap.add_argument("--device", choices=["cuda", "cpu"], default="cuda", help="cpu: a dry run of the script without a GPU")
    ap.add_argument("--json", help="where to write the result JSON")
    args = ap.parse_args(argv)
    global DEVICE
    DEVICE = args.device
    if gpu_missing(DEVICE):
        return 2
    import torch

    from share_search.engine.search import start_ray

    started = time.perf_counter()
    start_ray(None)
    ray_start = time.perf_counter() - started
    bare_times = bare(args.bare) if args.bare else []
    rows = []
    for fraction in args.fractions:
        rows.append(search(fraction, args.trials))
        print(f"gpu {fraction}: {rows[-1]['trials_per_min']:.1f} trials/min", flush=True)
    limit = 60 / statistics.mean(bare_times) if bare_times else None
    device_name = torch.cuda.get_device_name(0) if DEVICE == "cuda" else "CPU dry run"
    print_table(
        f"GPU B1: {SPEC.name}, {args.trials} trials per search, {device_name}; Ray start-up {ray_start:.1f} s not included; "
        + (f"bare sequential loop: median {median(bare_times):.1f} s per tree = {limit:.1f} trees/min" if bare_times else "no bare loop"),
        ["gpu per trial", "concurrency", "wall s", "complete", "failed", "trials/min", "median trial s", "speed-up vs gpu 1"],
        [[r["gpu_per_trial"], r["concurrency"], r["wall_s"], r["complete"], r["failed"], r["trials_per_min"], r["median_trial_s"],
          r["trials_per_min"] / rows[0]["trials_per_min"]] for r in rows],
    )
    write_json("gpu_b1" if DEVICE == "cuda" else "gpu_b1_cpu_dry_run", {"device": DEVICE, "trials": args.trials, "bare_s": bare_times, "ray_start_s": ray_start, "rows": rows}, args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
