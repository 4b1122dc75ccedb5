"""B1: executor efficiency. The physical limit of a search is Σ trial time / workers.

One fixed list of architectures (every tree of a small space, walked by ``sampler: grid``
with ``baselines: false``, so no reference trials are added) is trained four ways, side by
side in every repeat:

(a) bare      a plain sequential loop: ``spaces.grid_points`` + ``spaces.decode``, then
              ``arch.build_model`` and ``train.loop.fit``; no Ray, no Optuna, no study.
(b) search c1 ``share_search.engine.runner.run_search`` (Ray Tune + Optuna, the study in SQLite)
              at concurrency 1.
(c) search c2 the same at concurrency 2, one CPU and one torch thread per trial.
(d) bare x2   control: the bare loop split over two processes. On a machine shared
              with other work, (d) shows what two workers can get at all, so the search's
              own overhead at concurrency 2 can be told apart from CPU contention.

The bare loop (a) runs before the first repeat and after every repeat; each repeat takes
the mean of the runs before and after it as its reference, per tree, since this kind of
machine's speed drifts over minutes (the drift is reported). The bare loop's process is
warmed up once beforehand (one fit), so its warm-up is not counted; the search's workers'
is.

Reported per repeat, medians over repeats:
- efficiency = (Σ bare trial times / workers) / search wall time (the ``run_search`` call;
  Ray is started once beforehand and its start-up time is reported on its own),
- per-trial overhead = (search wall time x workers - Σ bare trial times) / trials,
- in-trial overhead: median of (the study's ``time_s`` - the bare time of the same tree),
- speed-up of concurrency 2 over 1, and of (d) over (a).

Also reported, because wall time on a shared machine mostly measures waiting: CPU
seconds of the driver and all Ray processes during the search (``/proc``), against the
bare loop's CPU seconds.

Ray starts its workers at niceness +15 by default (Ray's ``worker_niceness``), so on a
machine where other work runs, trials yield to it while a bare loop does not. By default
this script gives Ray's workers its own niceness (``RAY_worker_niceness``), so both sides
compete alike; ``--worker-niceness ray-default`` measures Ray's default instead.

    python benchmarks/b1_executor.py --quick   # 12 tiny trials, 1 repeat (~1.5 min on a free machine)
    python benchmarks/b1_executor.py           # 12 trials of ~8-12 s, 3 repeats (~25 min)
    python benchmarks/b1_executor.py --epochs 15 --json benchmarks/results/b1_executor_15epochs.json   # ~17 s trials (~35 min)
    python benchmarks/b1_executor.py --epochs 20 --json benchmarks/results/b1_executor_20epochs.json   # ~15-20 s trials (~45 min)
    python benchmarks/b1_executor.py --epochs 15 --lrs 0.003,0.002 --concurrency 2 --json benchmarks/results/b1_executor_24trials.json
        # the 12 trees x 2 learning rates, concurrency 2 only: a search's fixed costs over twice the trials (~50 min)
"""

from __future__ import annotations

import argparse
import datetime
import multiprocessing as mp
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

from _common import TreeCpu, median, package_attr, print_table, spread, write_json

TASKS = ("left", "right", "left_odd")  # 3 tasks x 3 stages: 12 trees


def spec_dict(quick: bool, concurrency: int, gpu: float = 0.0, epochs: int | None = None, lrs: tuple[float, ...] = (0.003,)) -> dict:
    """The benchmark spec: the default demo's data and backbone, three tasks, a grid of trees
    (times each learning rate of ``lrs``: more trials of the same cost)."""
    pairs = {"train": 300, "val": 200, "test": 100} if quick else {"train": 3000, "val": 1000, "test": 200}
    return {
        "name": "b1",
        "seed": 0,
        "data": {"source": "multimnist", "options": {"pairs": pairs}},
        "tasks": {t: {"metric": "accuracy"} for t in TASKS},
        "backbone": {"name": "convnet", "options": {"channels": [8, 16], "hidden": 32}},
        "families": {"tree": {}},
        "train": {"lr": lrs[0] if len(lrs) == 1 else list(lrs), "epochs": epochs or (1 if quick else 10), "batch_size": 64, "threads": 1, "device": "auto"},
        "search": {
            "sampler": "grid", "baselines": False, "objective": "per_task", "concurrency": concurrency, "export_top": 0,
            "resources": {"cpu": 1, "gpu": gpu},
        },
    }


def load(quick: bool, epochs: int | None = None, lrs: tuple[float, ...] = (0.003,)):
    from share_search.train.problem import load_problem
    from share_search.spec.model import parse_spec

    return load_problem(parse_spec(spec_dict(quick, 1, epochs=epochs, lrs=lrs)))


def point_key(arch: str, params: dict) -> str:
    """A grid point's name: its tree, and its learning rate when the grid searches one (only
    then is it a parameter). The bare loop reads the grid point, the search its study trial's
    params, which hold the same point."""
    train_param_name = package_attr("train_param_name", "share_search.space.spaces", "share_search.spaces")
    lr = params.get(train_param_name("lr"))
    return arch if lr is None else f"{arch} @ lr {lr:g}"


def study_key(trial) -> str:
    return point_key(trial.user_attrs["arch"], trial.params)


def bare_trials(quick: bool, indices: list[int] | None = None, epochs: int | None = None, lrs: tuple[float, ...] = (0.003,)) -> tuple[dict[str, float], dict[str, float]]:
    """(a): build and fit every grid point in order; its name -> wall seconds, and -> CPU seconds."""
    import torch

    from share_search.arch import build_model
    from share_search.space.spaces import decode, grid_points
    from share_search.train.loop import fit

    torch.set_num_threads(1)
    problem = load(quick, epochs, lrs)
    points = grid_points(problem)
    times, cpu = {}, {}
    for i in indices if indices is not None else range(len(points)):
        plan = decode(points[i], problem)
        key = point_key(plan.arch.summary(), points[i])
        started, cpu_started = time.perf_counter(), time.process_time()
        model = build_model(plan.arch, problem.backbone, problem.tasks)
        fit(model, problem.data, problem.tasks, plan.train)
        times[key] = time.perf_counter() - started
        cpu[key] = time.process_time() - cpu_started
    return times, cpu


def _bare_worker(args):
    return bare_trials(*args)


def bare_parallel(quick: bool, n_points: int, workers: int = 2, epochs: int | None = None, lrs: tuple[float, ...] = (0.003,)) -> tuple[float, float]:
    """(d): the bare loop split over ``workers`` processes (spawned and loaded before timing); wall and CPU seconds."""
    ctx = mp.get_context("spawn")
    with ctx.Pool(workers) as pool:
        pool.map(_warm, range(workers))  # import torch and share_search before the clock starts
        shares = [(quick, list(range(w, n_points, workers)), epochs, lrs) for w in range(workers)]
        started = time.perf_counter()
        with TreeCpu() as cpu:
            pool.map(_bare_worker, shares)
        return time.perf_counter() - started, cpu.seconds


def _warm(_):
    import share_search.train.loop  # noqa: F401
    import share_search.arch  # noqa: F401

    load(True)
    return 0


def search_run(quick: bool, concurrency: int, gpu: float = 0.0, epochs: int | None = None, lrs: tuple[float, ...] = (0.003,)) -> tuple[float, float, dict[str, float], int, dict[str, float]]:
    """(b)/(c): one ``run_search`` into a fresh folder: wall time, CPU seconds of the driver and
    every Ray process, the study's ``time_s`` per tree, completed trials, and the timeline."""
    run_search = package_attr("run_search", "share_search.engine.runner", "share_search.runner")
    parse_spec = package_attr("parse_spec", "share_search.spec.model", "share_search.spec")
    load_run_study = package_attr("load_run_study", "share_search.runs.study", "share_search.study")

    spec = parse_spec(spec_dict(quick, concurrency, gpu, epochs, lrs))
    out = Path(tempfile.mkdtemp(prefix="b1-")) / "run"
    try:
        started, began = time.perf_counter(), datetime.datetime.now()
        with TreeCpu() as meter:
            outcome = run_search(spec, out, show_progress=False)
        wall, cpu, ended = time.perf_counter() - started, meter.seconds, datetime.datetime.now()
        study, _ = load_run_study(out)
        done = [t for t in study.trials if t.user_attrs.get("time_s") is not None]
        times = {study_key(t): t.user_attrs["time_s"] for t in done}
        return wall, cpu, times, outcome.counts.get("complete", 0), timeline(done, began, ended, concurrency)
    finally:
        shutil.rmtree(out.parent, ignore_errors=True)


def timeline(trials, began, ended, concurrency: int = 1) -> dict:
    """Where a search's wall time went, from the study's ask (start) and tell (complete) times.

    before first trial: run_search start to the first ask (data, study, Tuner start-up);
    after last trial: the last tell to run_search's return (Tuner shutdown, leaderboard);
    ask-to-tell minus time_s: per trial, time around the trial body (actor, results, tell);
    between trials (concurrency 1 only): one trial's tell to the next one's ask;
    worker start: each worker's first trial (the first ``concurrency`` asked), its
    ask-to-tell minus time_s: a fresh Ray worker process importing torch and share-search;
    idle tail: the last tell minus the one before, while one worker has nothing left to run.
    """
    trials = sorted(trials, key=lambda t: t.datetime_start)
    starts = [t.datetime_start for t in trials]
    ends = [t.datetime_complete for t in trials]
    around = [(e - s).total_seconds() - t.user_attrs["time_s"] for s, e, t in zip(starts, ends, trials)]
    tells = sorted(ends)
    return {
        "before_first_trial_s": (min(starts) - began).total_seconds(),
        "after_last_trial_s": (ended - max(ends)).total_seconds(),
        "ask_to_tell_minus_time_s": statistics.median(around[concurrency:] or around),
        "between_trials_s": statistics.median((starts[i + 1] - ends[i]).total_seconds() for i in range(len(trials) - 1)) if len(trials) > 1 else 0.0,
        "worker_start_s": statistics.mean(around[:concurrency]),
        "idle_tail_s": (tells[-1] - tells[-2]).total_seconds() if concurrency > 1 and len(tells) > 1 else 0.0,
        "first_archs": [study_key(t) for t in trials[:concurrency]],
    }


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="tiny data, 1 epoch, 1 repeat (checks the script; figures come from the full mode)")
    ap.add_argument("--repeats", type=int, help="default 3 (quick: 1)")
    ap.add_argument(
        "--worker-niceness", choices=["same", "ray-default"], default="same",
        help="same (default): Ray's trial workers get this script's niceness, as the bare loop has; "
        "ray-default: Ray's own default (+15), which makes trials yield to any other work on the machine",
    )
    ap.add_argument("--epochs", type=int, help="epochs per trial (default 10; quick: 1): longer trials amortize a search's fixed costs")
    ap.add_argument(
        "--lrs", default="0.003", help="comma-separated learning rates: the grid is every tree times each (default 0.003: 12 trials; "
        "0.003,0.002: 24 trials of the same cost, so a search's fixed costs weigh half as much)",
    )
    ap.add_argument("--concurrency", choices=["both", "2"], default="both", help="2: skip the concurrency-1 search (halves a long run)")
    ap.add_argument("--json", help="where to write the result JSON")
    args = ap.parse_args(argv)
    lrs = tuple(float(x) for x in args.lrs.split(","))
    levels = (1, 2) if args.concurrency == "both" else (2,)
    repeats = args.repeats or (1 if args.quick else 3)
    if args.worker_niceness == "same":  # read by the raylet when ray.init starts it
        os.environ["RAY_worker_niceness"] = str(os.nice(0))

    import ray  # noqa: F401  (imported before timing)

    from share_search.engine.search import start_ray
    from share_search.space.spaces import grid_points

    n = len(grid_points(load(args.quick, lrs=lrs)))
    load_at_start = " / ".join(f"{x:.1f}" for x in os.getloadavg())
    started = time.perf_counter()
    start_ray(None)
    ray_start_s = time.perf_counter() - started
    print(f"{n} trials; Ray started in {ray_start_s:.1f} s", flush=True)

    def bare_run(label: str) -> tuple[dict[str, float], dict[str, float]]:
        times, cpu = bare_trials(args.quick, epochs=args.epochs, lrs=lrs)
        print(f"{label}: bare Σ {sum(times.values()):.1f} s", flush=True)
        return times, cpu

    bare_trials(args.quick, [0], args.epochs, lrs)  # this process's one-time warm-up (imports, kernels), which search workers pay once each
    reps = []
    bare_next = bare_run("before repeat 1")
    for r in range(repeats):
        rep: dict = {}
        for c in levels:
            rep[f"c{c}_wall"], rep[f"c{c}_cpu"], rep[f"c{c}_time_s"], rep[f"c{c}_complete"], rep[f"c{c}_timeline"] = search_run(args.quick, c, epochs=args.epochs, lrs=lrs)
            rep.update({f"c{c}_{k}": v for k, v in rep[f"c{c}_timeline"].items() if k != "first_archs"})
            print(f"repeat {r + 1}: search c{c} {rep[f'c{c}_wall']:.1f} s", flush=True)
        rep["bare2_wall"], rep["bare2_cpu"] = bare_parallel(args.quick, n, epochs=args.epochs, lrs=lrs)
        print(f"repeat {r + 1}: bare x2 {rep['bare2_wall']:.1f} s", flush=True)
        # the bare loop runs before and after each repeat's searches; their mean is the
        # reference, so a drift of the machine's speed during the repeat cancels to first order
        (rep["bare_before"], cpu_before), bare_next = bare_next, bare_run(f"after repeat {r + 1}")
        rep["bare_after"] = bare_next[0]
        rep["bare"] = {a: (rep["bare_before"][a] + rep["bare_after"][a]) / 2 for a in rep["bare_before"]}
        rep["bare_cpu"] = {a: (cpu_before[a] + bare_next[1][a]) / 2 for a in cpu_before}
        rep["bare_drift"] = sum(rep["bare_after"].values()) / sum(rep["bare_before"].values())
        bare_sum = rep["bare_sum"] = sum(rep["bare"].values())
        bare_cpu = rep["bare_cpu_sum"] = sum(rep["bare_cpu"].values())
        for c in levels:
            rep[f"eff_c{c}"] = bare_sum / c / rep[f"c{c}_wall"]
            rep[f"overhead_c{c}"] = (c * rep[f"c{c}_wall"] - bare_sum) / n
            rep[f"in_trial_c{c}"] = statistics.median(rep[f"c{c}_time_s"][a] - rep["bare"][a] for a in rep[f"c{c}_time_s"])
            rep[f"cpu_eff_c{c}"] = bare_cpu / rep[f"c{c}_cpu"]
            rep[f"cpu_overhead_c{c}"] = (rep[f"c{c}_cpu"] - bare_cpu) / n
            rep[f"fit_ratio_c{c}"] = statistics.median(rep[f"c{c}_time_s"][a] / rep["bare"][a] for a in rep[f"c{c}_time_s"])
            # a fresh worker's first fit (oneDNN, allocator, torch._dynamo through torch.optim):
            # its time_s over bare, beyond what the worker's later trials show
            first = rep[f"c{c}_timeline"]["first_archs"]
            later = [rep[f"c{c}_time_s"][a] - rep["bare"][a] for a in rep[f"c{c}_time_s"] if a not in first]
            rep[f"first_fit_extra_c{c}"] = statistics.mean(rep[f"c{c}_time_s"][a] - rep["bare"][a] for a in first) - statistics.median(later or [0.0])
        # a search's wall time = what it costs once (worker start, warm-up, last trial alone,
        # Tuner start and end) + its trials' own time over the workers: the fixed part is what
        # more trials would amortize, the Σ ratio is how much slower trials run side by side
        rep["c2_fixed_s"] = rep["c2_wall"] - sum(rep["c2_time_s"].values()) / 2
        rep["c2_sum_ratio"] = sum(rep["c2_time_s"].values()) / bare_sum
        if 1 in levels:
            # without the once-per-search start (Tuner, first ask) and end (last tell to return):
            # what a longer search tends to
            rep["eff_c1_steady"] = bare_sum / (rep["c1_wall"] - rep["c1_before_first_trial_s"] - rep["c1_after_last_trial_s"])
            rep["speedup_c2"] = rep["c1_wall"] / rep["c2_wall"]
        rep["speedup_bare2"] = bare_sum / rep["bare2_wall"]
        rep["eff_c2_vs_bare2"] = rep["bare2_wall"] / rep["c2_wall"]
        reps.append(rep)

    def row(name, key, digits=2):
        values = [r[key] for r in reps if key in r]
        if not values:  # a measure of a search this run skipped (--concurrency 2)
            return None
        lo, hi = spread(values)
        return [name, median(values), f"{lo:.{digits}f}-{hi:.{digits}f}"]

    table = [
        row("trials completed per search", "c2_complete"),
        row("bare: Σ trial wall time, s (mean of the runs before and after the repeat)", "bare_sum"),
        row("bare: Σ after / Σ before the repeat (the machine's drift)", "bare_drift"),
        ["bare: median trial wall time, s", median(statistics.median(r["bare"].values()) for r in reps), ""],
        row("search c1: wall, s", "c1_wall"),
        row("search c2: wall, s", "c2_wall"),
        row("efficiency c1 = Σ bare / wall (goal >= 0.90)", "eff_c1"),
        row("efficiency c2 = Σ bare / 2 / wall (goal >= 0.85)", "eff_c2"),
        row("efficiency c1 without the search's start and end", "eff_c1_steady"),
        row("per-trial overhead c1, s", "overhead_c1"),
        row("per-trial overhead c2 (worker-seconds), s", "overhead_c2"),
        row("in-trial overhead c1 (study time_s - bare), s", "in_trial_c1"),
        row("in-trial overhead c2 (study time_s - bare), s", "in_trial_c2"),
        row("in-trial time ratio c1 (study time_s / bare, median over trees)", "fit_ratio_c1"),
        row("in-trial time ratio c2", "fit_ratio_c2"),
        row("speed-up c2 over c1", "speedup_c2"),
        row("c1 timeline: run start to first trial, s", "c1_before_first_trial_s"),
        row("c1 timeline: last trial to run end, s", "c1_after_last_trial_s"),
        row("c1 timeline: per trial, ask-to-tell minus time_s, s", "c1_ask_to_tell_minus_time_s"),
        row("c1 timeline: per trial, tell to next ask, s", "c1_between_trials_s"),
        row("worker start, per worker: first trial's ask-to-tell minus time_s, c1, s", "c1_worker_start_s"),
        row("worker start, per worker, c2, s", "c2_worker_start_s"),
        row("first fit in a fresh worker: time_s - bare beyond later trials', c1, s", "first_fit_extra_c1"),
        row("first fit in a fresh worker, c2, s", "first_fit_extra_c2"),
        row("c2 timeline: idle tail (last tell - the one before), s", "c2_idle_tail_s"),
        row("c2: fixed cost per search = wall - Σ study time_s / 2, s", "c2_fixed_s"),
        row("c2: Σ study time_s / Σ bare (trials side by side)", "c2_sum_ratio"),
        row("c2 timeline: run start to first trial, s", "c2_before_first_trial_s"),
        row("c2 timeline: last trial to run end, s", "c2_after_last_trial_s"),
        row("control: bare x2 (two processes) wall, s", "bare2_wall"),
        row("control: speed-up bare x2 over bare", "speedup_bare2"),
        row("c2 against the control: bare x2 wall / c2 wall", "eff_c2_vs_bare2"),
        row("CPU: Σ bare CPU s / search CPU s (driver + Ray), c1", "cpu_eff_c1"),
        row("CPU: same, c2", "cpu_eff_c2"),
        row("CPU overhead per trial, c1, CPU s", "cpu_overhead_c1"),
        row("CPU overhead per trial, c2, CPU s", "cpu_overhead_c2"),
    ]
    table = [r for r in table if r is not None]
    print_table(
        f"B1 executor efficiency: {n} trials, {repeats} repeat(s), medians (range); Ray start-up {ray_start_s:.1f} s not included; "
        f"Ray worker niceness: {args.worker_niceness}; load average at start {load_at_start}",
        ["measure", "median", "range"],
        table,
    )
    write_json(
        "b1_executor" + ("_quick" if args.quick else ""),
        {"mode": "quick" if args.quick else "full", "trees": n, "lrs": list(lrs), "concurrency": args.concurrency, "repeats": reps, "ray_start_s": ray_start_s, "worker_niceness": args.worker_niceness, "script_niceness": os.nice(0), "spec": spec_dict(args.quick, 1, epochs=args.epochs, lrs=lrs),
         "summary": {r[0]: r[1] for r in table}},
        args.json,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
