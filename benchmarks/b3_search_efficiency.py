"""B3: how much compute a sampler needs, against "train every architecture, pick the best".

Two steps:

``table``   trains every tree of a small space (60 trees) with two training seeds and writes
            every epoch's validation accuracy to ``benchmarks/b3_table.csv``; no Ray,
            ``share_search.train.loop.fit`` directly, one torch thread. About 15 minutes on one
            free core. Resumable: (tree, seed) pairs already in the CSV are skipped.
``replay``  (default) replays samplers against that table with real Optuna samplers
            (ask/tell on the define-by-run space the tool samples, through
            ``share_search.space.spaces.sample_trial``) and reports the compute spent until the
            search has trained an architecture within the seed noise of the exhaustive
            best, as a fraction of exhaustive compute.

The space: four tasks on data with a planted sharing structure (``b3_data.py``: two
groups of two tasks; the tasks of a group are independently noised copies of one target,
the groups have unrelated targets), a two-stage MLP backbone (widths 16, 16), and the
``tree`` family with ``first_stage_shared: false``: all 60 trees, the single-task networks
and hard sharing included. Whether architectures really differ here is measured, not
assumed: spread (best minus median Δm over the space) against seed noise (mean
|Δm(seed 0) - Δm(seed 1)| of the same tree). Training seeds change initialisation and
batch order; the data and its split stay fixed.

Replay model (concurrency 1, in the order the sampler proposes):
- The references come first, as in the tool: the single-task networks, then hard
  sharing, both trained in full (no scheduler) and both counted. Exhaustive compute is
  60 trees x 30 epochs = 1,800 trial-epochs.
- A replay sees the table's values of *one* training seed (sampler seed k observes
  training seed k mod 2), as a real search sees one run of each architecture; Δm against
  that seed's single-task networks. Success is judged on the truth: Δm averaged over both
  seeds against the mean baseline; the targets are the trees within the seed noise of
  the best.
- A proposal of a tree trained before is trained again and pays again (the tool does not
  deduplicate).
- ``*+asha``: the per-epoch Δm values go through the rule of Ray Tune's ``ASHAScheduler``
  as share-search configures it (one bracket, reduction factor 3), here with grace period 1
  (rungs at epochs 1, 3, 9, 27): at a rung a trial stops when its value is below the (1 - 1/3)
  quantile of the values earlier trials recorded at that rung (Li et al. 2020, "A System
  for Massively Parallel Hyperparameter Tuning", MLSys). Per-epoch values are reported to
  the Optuna trial and a stopped trial is told PRUNED, as the tool does.
- ``tpe+asha-g3``: the same with grace period 3 (rungs at 3, 9, 27), the tool's default,
  to show how much the first rung decides.
- TPE (Bergstra, Bardenet, Bengio, Kégl 2011, "Algorithms for Hyper-Parameter
  Optimization", NeurIPS) with the tool's settings: multivariate, group, constant liar,
  10 start-up trials. Random: Optuna's RandomSampler on the same define-by-run space
  (not uniform over trees: a tree's chance follows the nested choices).
- "found": the first time a completed trial is a target. "incumbent": the first time the
  search's own best (by the values it observed) is a target, which is what a user gets.

Run from the repository root:
    python benchmarks/b3_search_efficiency.py replay --quick     # 5 sampler seeds, seconds
    python benchmarks/b3_search_efficiency.py replay             # 50 sampler seeds
    nice -n 10 python benchmarks/b3_search_efficiency.py table   # regenerate b3_table.csv
"""

from __future__ import annotations

import argparse
import csv
import math
import sys
import time
from pathlib import Path

import numpy as np

from _common import HERE, median, print_table, write_json

TABLE = HERE / "b3_table.csv"
TASKS = ("a0", "a1", "b0", "b1")
SEEDS = (0, 1)
EPOCHS = 30
GRACE, REDUCTION = 1, 3  # the first cut after one epoch; share-search's reduction factor
PLANTED = {"n": 8000, "dim": 32, "hidden": 16, "classes": 8, "groups": 2, "tasks_per_group": 2, "gain": 2.0, "flip": 0.5,
           "shared_readout": True, "seed": 0}
SPEC = {
    "name": "b3",
    "seed": 0,
    # b3_data.py (next to this script): 4,000 train / 3,200 validation / 800 test samples
    "data": {"source": "b3_data:planted", "options": PLANTED, "val_fraction": 0.4, "test_fraction": 0.1},
    "tasks": {t: {"metric": "accuracy"} for t in TASKS},
    "backbone": {"name": "mlp", "options": {"widths": [16, 16]}},
    "families": {"tree": {"first_stage_shared": False}},
    "train": {"optimizer": "adam", "lr": 0.003, "epochs": EPOCHS, "batch_size": 64, "weighting": "equal", "threads": 1},
    "search": {"sampler": "tpe", "baselines": True, "scheduler": {"type": "asha", "grace_period": GRACE, "reduction_factor": REDUCTION}},
}
NAMED = {  # trees worth naming in the report
    "independent (single-task networks)": "tree: [a0][a1][b0][b1]x2",
    "hard sharing": "tree: [a0 a1 b0 b1]x2",
    "planted: split by group at the input": "tree: [a0 a1][b0 b1]x2",
    "planted grouping, then split": "tree: [a0 a1][b0 b1] > [a0][a1][b0][b1]",
    "anti-planted: one task of each group together": "tree: [a0 b0][a1 b1]x2",
    "shared stage 0, then split by group": "tree: [a0 a1 b0 b1] > [a0 a1][b0 b1]",
}
COLUMNS = ["arch", "role", "seed", "epoch", "selected", *(f"val.{t}" for t in TASKS), "train_loss", "val_loss", "params", "macs", "fit_s"]


def problem():
    from share_search.train.problem import load_problem
    from share_search.spec.model import parse_spec

    return load_problem(parse_spec(SPEC))


# --------------------------------------------------------------------------- table
def build_table(out: Path, limit: int | None, epochs: int) -> None:
    """Train the space exhaustively (every tree x every seed) and append rows to ``out``."""
    import torch

    from share_search.arch import build_model
    from share_search.arch._cost import count_macs, count_parameters
    from share_search.arch.tree import TreeConfig
    from share_search.space.spaces import space_info
    from share_search.spec.registry import FAMILY_SPACES
    from share_search.train.loop import fit
    from dataclasses import replace

    torch.set_num_threads(1)
    p = problem()
    from share_search.space.spaces import default_train_values, train_config

    config = train_config(p.spec, default_train_values(p.spec))
    config = replace(config, epochs=epochs, device="cpu")
    info = space_info(p)
    trees = FAMILY_SPACES["tree"].enumerate(list(info.task_names), info.n_stages, p.spec.families["tree"])
    independent = TreeConfig.independent(p.task_names, info.n_stages)
    jobs = [(t, "single_task" if t == independent else "") for t in trees[:limit]]
    if independent not in trees[:limit]:  # the Δm baseline, trained whether or not the space holds it
        jobs.insert(0, (independent, "single_task"))
    done = set()
    if out.exists():
        with out.open() as f:
            done = {(r["arch"], int(r["seed"])) for r in csv.DictReader(f)}
    print(f"{len(trees)} trees in the space; {len(jobs) * len(SEEDS) - len(done)} fits to go -> {out}", flush=True)
    new = not out.exists()
    with out.open("a", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=COLUMNS)
        if new:
            writer.writeheader()
        for arch, role in jobs:
            for seed in SEEDS:
                if (arch.summary(), seed) in done:
                    continue
                model = build_model(arch, p.backbone, p.tasks)
                params, macs = count_parameters(model), count_macs(model, p.backbone.input_shape)
                result = fit(model, p.data, p.tasks, replace(config, seed=seed))
                for h in result.history:
                    writer.writerow(
                        {
                            "arch": arch.summary(), "role": role, "seed": seed, "epoch": h["epoch"],
                            "selected": int(h["epoch"] == result.best_epoch),
                            **{f"val.{t}": f"{h[f'{t}.accuracy']:.6f}" for t in TASKS},
                            "train_loss": f"{h['train_loss']:.6f}", "val_loss": f"{h['val_loss']:.6f}",
                            "params": params, "macs": macs, "fit_s": f"{result.wall_time_s:.2f}",
                        }
                    )
                f.flush()
                print(f"{arch.summary():70s} seed {seed}  {result.wall_time_s:5.1f} s  best epoch {result.best_epoch}", flush=True)


# --------------------------------------------------------------------------- the table as arrays
class Table:
    """Per (architecture, seed): Δm at every epoch and at the selected epoch."""

    def __init__(self, path: Path):
        from share_search.runs.rank import delta_m

        rows = list(csv.DictReader(path.open()))
        self.epochs = max(int(r["epoch"]) for r in rows)
        acc: dict[tuple[str, int], dict[int, dict[str, float]]] = {}
        selected: dict[tuple[str, int], int] = {}
        self.roles: dict[str, str] = {}
        self.fit_s: dict[str, list[float]] = {}
        for r in rows:
            key = (r["arch"], int(r["seed"]))
            acc.setdefault(key, {})[int(r["epoch"])] = {t: float(r[f"val.{t}"]) for t in TASKS}
            if r["selected"] == "1":
                selected[key] = int(r["epoch"])
                self.fit_s.setdefault(r["arch"], []).append(float(r["fit_s"]))
            self.roles[r["arch"]] = r["role"]
        baseline_arch = next(a for a, role in self.roles.items() if role == "single_task")
        baseline_in_space = not SPEC["families"]["tree"]["first_stage_shared"]  # independent networks are a tree of the space
        self.archs = [a for a, role in self.roles.items() if role == "" or (a == baseline_arch and baseline_in_space)]
        missing = [(a, s) for a in self.archs for s in SEEDS if (a, s) not in selected]
        if missing:
            raise SystemExit(f"{path}: {len(missing)} (architecture, seed) pairs lack rows, e.g. {missing[0]}; finish `table` first")
        up = {t: True for t in TASKS}
        base = {s: acc[(baseline_arch, s)][selected[(baseline_arch, s)]] for s in SEEDS}
        mean_base = {t: float(np.mean([base[s][t] for s in SEEDS])) for t in TASKS}
        self.baseline = {"per_seed": base, "mean": mean_base}
        # What a search observes: its own seed's baseline; the truth uses the mean baseline,
        # so the seed-to-seed difference measures the architecture alone.
        self.curve = {(a, s): [delta_m(acc[(a, s)][e], base[s], up) for e in range(1, self.epochs + 1)] for a in self.archs for s in SEEDS}
        self.final = {(a, s): delta_m(acc[(a, s)][selected[(a, s)]], base[s], up) for a in self.archs for s in SEEDS}
        self.true_by_seed = {(a, s): delta_m(acc[(a, s)][selected[(a, s)]], mean_base, up) for a in self.archs for s in SEEDS}
        self.truth = {a: float(np.mean([self.true_by_seed[(a, s)] for s in SEEDS])) for a in self.archs}
        self.task_acc = {a: {t: float(np.mean([acc[(a, s)][selected[(a, s)]][t] for s in SEEDS])) for t in TASKS} for a in self.archs}
        self.best_arch = max(self.truth, key=self.truth.get)
        self.best = self.truth[self.best_arch]
        self.noise = float(np.mean([abs(self.true_by_seed[(a, 0)] - self.true_by_seed[(a, 1)]) for a in self.archs]))
        self.spread = self.best - float(np.median(list(self.truth.values())))
        self.targets = {a for a, v in self.truth.items() if v >= self.best - self.noise}

    def rank_correlation(self) -> float:
        from scipy.stats import spearmanr

        return float(spearmanr([self.true_by_seed[(a, 0)] for a in self.archs], [self.true_by_seed[(a, 1)] for a in self.archs]).statistic)


# --------------------------------------------------------------------------- replay
class Asha:
    """The stopping rule of Ray Tune's ASHAScheduler (one bracket, mode max), replayed."""

    def __init__(self, grace: int, reduction: float, epochs: int):
        self.rf = reduction
        self.rungs = {}
        k = 0
        while grace * reduction**k <= epochs:  # every rung a trial can reach (Ray's max_t is far above)
            self.rungs[int(grace * reduction**k)] = []
            k += 1

    def continues(self, epoch: int, value: float) -> bool:
        recorded = self.rungs.get(epoch)
        if recorded is None:
            return True
        cutoff = np.nanpercentile(recorded, (1 - 1 / self.rf) * 100) if recorded else None
        recorded.append(value)
        return cutoff is None or value >= cutoff


def make_sampler(name: str, seed: int):
    import optuna

    if name.startswith("tpe"):
        return optuna.samplers.TPESampler(seed=seed, multivariate=True, group=True, constant_liar=True, n_startup_trials=10)
    return optuna.samplers.RandomSampler(seed=seed)


def replay(table: Table, sampler_name: str, sampler_seed: int, max_trials: int) -> dict:
    """One search against the table; returns its costs in trial-epochs."""
    import optuna
    from optuna.trial import TrialState

    from share_search.space.spaces import arch_params, reference_archs, sample_trial

    p = table.problem
    seed = SEEDS[sampler_seed % len(SEEDS)]
    study = optuna.create_study(direction="maximize", sampler=make_sampler(sampler_name, sampler_seed))
    references = 0
    for _, reference in reference_archs(p):  # the tool trains the references first, without a scheduler
        params = arch_params(reference, p)
        if params is not None:  # inside the space: a trial the sampler learns from
            study.enqueue_trial(params)
            references += 1
    # "+asha": grace period 1, the tool's reduction factor; "+asha-g3": grace period 3, the tool's default
    grace = int(sampler_name.rsplit("-g", 1)[1]) if "+asha-g" in sampler_name else GRACE
    asha = Asha(grace, REDUCTION, table.epochs) if "+asha" in sampler_name else None
    epochs_used = 0
    found = incumbent_ok = None
    best_seen, best_arch, distinct = -math.inf, None, set()
    for n in range(1, max_trials + 1):
        trial = study.ask()
        arch = sample_trial(trial, p).arch.summary()
        curve = table.curve[(arch, seed)]
        stopped = False
        for epoch, value in enumerate(curve, start=1):
            epochs_used += 1
            trial.report(value, epoch)
            if asha is not None and n > references and not asha.continues(epoch, value):
                stopped = True
                break
        if stopped:
            study.tell(trial, state=TrialState.PRUNED)
        else:
            value = table.final[(arch, seed)]
            study.tell(trial, value)
            distinct.add(arch)
            if found is None and arch in table.targets:
                found = dict(trials=n, epochs=epochs_used)
            if value > best_seen:
                best_seen, best_arch = value, arch
        if incumbent_ok is None and best_arch in table.targets:
            incumbent_ok = dict(trials=n, epochs=epochs_used)
        if found and incumbent_ok:
            break
    return {"sampler": sampler_name, "sampler_seed": sampler_seed, "observed_seed": seed, "found": found, "incumbent": incumbent_ok, "trials": n, "distinct": len(distinct)}


def run_replays(table: Table, samplers: list[str], n_seeds: int, max_trials: int) -> list[dict]:
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    out = []
    for name in samplers:
        started = time.perf_counter()
        for k in range(n_seeds):
            out.append(replay(table, name, k, max_trials))
        print(f"  {name}: {n_seeds} replays in {time.perf_counter() - started:.1f} s", flush=True)
    return out


def summarise(results: list[dict], key: str, exhaustive: int) -> dict:
    fractions = [r[key]["epochs"] / exhaustive if r[key] else math.inf for r in results]
    ok = [f for f in fractions if math.isfinite(f)]
    q = lambda p: float(np.quantile(fractions, p, method="inverted_cdf"))  # a sample value; inf = never within the budget
    return {
        "median": q(0.5),
        "p25": q(0.25),
        "p75": q(0.75),
        "max": float(max(fractions)),
        "within_25pct": sum(f <= 0.25 for f in fractions) / len(fractions),
        "not_found": len(fractions) - len(ok),
    }


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("step", nargs="?", choices=["replay", "table"], default="replay")
    ap.add_argument("--quick", action="store_true", help="replay: 5 sampler seeds instead of 50")
    ap.add_argument("--seeds", type=int, help="replay: sampler seeds per sampler (default 50, quick 5)")
    ap.add_argument("--csv", type=Path, default=TABLE, help="the exhaustive table (default benchmarks/b3_table.csv)")
    ap.add_argument("--limit", type=int, help="table: only the first N trees (a smoke check)")
    ap.add_argument("--epochs", type=int, default=EPOCHS, help="table: epochs per fit")
    ap.add_argument("--json", help="where to write the result JSON")
    args = ap.parse_args(argv)
    if args.step == "table":
        build_table(args.csv, args.limit, args.epochs)
        return 0

    started = time.perf_counter()
    table = Table(args.csv)
    table.problem = problem()
    n_arch = len(table.archs)
    exhaustive = n_arch * table.epochs
    rho = table.rank_correlation()
    ranked = sorted(table.archs, key=table.truth.get, reverse=True)
    print_table(
        f"B3 space: {n_arch} trees, planted data (b3_data.py), 4 tasks, mlp {SPEC['backbone']['options']['widths']}, "
        f"{table.epochs} epochs, seeds {list(SEEDS)} (Δm in %, vs the single-task networks, mean baseline of both seeds; "
        "top 8, bottom 3 and named trees; task columns: validation accuracy %)",
        ["rank", "architecture", "Δm seed 0", "Δm seed 1", "Δm mean", *TASKS, "fit s"],
        [
            [i + 1, a, table.true_by_seed[(a, 0)], table.true_by_seed[(a, 1)], table.truth[a], *(100 * table.task_acc[a][t] for t in TASKS), median(table.fit_s[a])]
            for i, a in enumerate(ranked)
            if i < 8 or i >= n_arch - 3 or a in NAMED.values()
        ],
    )
    space = {
        "architectures": n_arch,
        "best": table.best_arch,
        "best_delta_m": table.best,
        "median_delta_m": float(np.median(list(table.truth.values()))),
        "spread": table.spread,
        "seed_noise": table.noise,
        "spread_over_noise": table.spread / table.noise,
        "targets_within_noise": sorted(table.targets),
        "spearman_seed0_vs_seed1": rho,
        "named": {name: {"arch": a, "delta_m": table.truth.get(a), "rank": ranked.index(a) + 1} for name, a in NAMED.items() if a in table.truth},
        "exhaustive_trial_epochs": exhaustive,
        "exhaustive_fit_s_median": median([median(v) for a, v in table.fit_s.items() if a in table.truth]),
        "baseline_val_accuracy": table.baseline,
    }
    from scipy.stats import spearmanr

    space["spearman_epoch_vs_final"] = {  # how well an early rung predicts the final ranking (mean over seeds)
        e: float(np.mean([spearmanr([table.curve[(x, s)][e - 1] for x in table.archs], [table.final[(x, s)] for x in table.archs]).statistic for s in SEEDS]))
        for e in (1, 3, 9, 27) if e <= table.epochs
    }
    # Exhaustive search with one seed: does picking its own best land within the noise?
    one_seed_pick = {s: max(table.archs, key=lambda a: table.final[(a, s)]) for s in SEEDS}
    space["exhaustive_one_seed_pick"] = {str(s): {"arch": a, "within_noise": a in table.targets} for s, a in one_seed_pick.items()}
    print_table(
        "B3 spread against noise",
        ["architectures", "best Δm", "median Δm", "spread", "seed noise", "spread / noise", "targets", "Spearman seed 0 vs 1"],
        [[n_arch, table.best, space["median_delta_m"], table.spread, table.noise, table.spread / table.noise, len(table.targets), rho]],
    )
    print_table(
        "B3 how early epochs predict the final ranking (Spearman over the 60 trees, mean over seeds)",
        [f"epoch {e}" for e in space["spearman_epoch_vs_final"]],
        [list(space["spearman_epoch_vs_final"].values())],
    )

    n_seeds = args.seeds or (5 if args.quick else 50)
    samplers = ["random", "tpe", "tpe+asha", "random+asha", "tpe+asha-g3"]
    results = run_replays(table, samplers, n_seeds, max_trials=3 * n_arch)
    rows, summary = [], {}
    for name in samplers:
        mine = [r for r in results if r["sampler"] == name]
        found, inc = summarise(mine, "found", exhaustive), summarise(mine, "incumbent", exhaustive)
        summary[name] = {"found": found, "incumbent": inc}
        rows.append([name, len(mine), found["median"], f"{found['p25']:.2f}-{found['p75']:.2f}", found["max"], found["within_25pct"], inc["median"], f"{inc['p25']:.2f}-{inc['p75']:.2f}", inc["not_found"]])
    print_table(
        f"B3 replay: trial-epochs until a target is trained ('found') / until the search's own best is a target "
        f"('incumbent'), as a fraction of exhaustive compute ({exhaustive} trial-epochs); goal: median <= 0.25",
        ["sampler", "seeds", "found median", "found IQR", "found max", "share <= 0.25", "incumbent median", "incumbent IQR", "incumbent never"],
        rows,
    )
    write_json(
        "b3_search_efficiency" + ("_quick" if args.quick else ""),
        {"mode": "quick" if args.quick else "full", "sampler_seeds": n_seeds, "space": space, "summary": summary, "replays": results,
         "seconds": time.perf_counter() - started},
        args.json,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
