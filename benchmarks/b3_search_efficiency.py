"""B3: how much compute a search needs to export the truly best architecture, against
"train every architecture, pick the best".

Two steps:

``table``   trains every tree of a small space (60 trees) with five training seeds and writes
            every epoch's validation accuracy and each task's selected epoch to
            ``benchmarks/b3_table.csv``; no Ray, ``share_search.train.loop.fit`` directly, one
            torch thread. Seed by seed, as a search measures its trials: the single-task
            networks first (each column at its own best epoch), then every tree with that
            seed's baseline handed to ``fit`` as ``engine.trial.run_trial`` hands it, so the
            selected epoch is the one the tool selects (Δm against the baseline,
            ``train/selection.py``). About 25-40 minutes on one core. Resumable: (tree, seed)
            pairs already in the CSV are skipped.
``replay``  (default) replays searches against that table with real Optuna samplers (ask/tell
            on the define-by-run space the tool samples, ``share_search.space.spaces.sample_trial``).

The space: four tasks on data with a planted sharing structure (``b3_data.py``: two
groups of two tasks; the tasks of a group are independently noised copies of one target,
the groups have unrelated targets), a two-stage MLP backbone (widths 16, 16), and the
``tree`` family with ``first_stage_shared: false``: all 60 trees, the single-task networks
and hard sharing included. Training seeds change initialisation and batch order; the data
and its split stay fixed. Δm of a tree on a seed is paired: against the single-task
networks of the same seed.

The truth: a tree's mean Δm over the 5 seeds; "truly best" = the trees whose mean lies within
one standard error (of the best tree's mean) of the best mean. Whether trees really differ
here is measured: spread (best minus median mean Δm) against seed noise (standard deviation
over seeds), and Spearman rank correlation of the trees between every two seeds. The
replays observe the same 5 seeds the truth averages (a bias in their favour: a search that
has seen a seed has seen part of the truth).

Compute is counted in trial-epochs (one network trained one epoch), every trained epoch
counted: references, every seed of ``search.repeats``, the race's seeds and the baseline on
each new seed. Exhaustive compute = every tree once, one seed, 30 epochs = 1,800.

Replay model (concurrency 1, in the order the sampler proposes):
- The references come first, as in the tool: the single-task networks, then hard
  sharing, both trained in full (no scheduler), on every seed of the search, and counted.
- Sampler seed k observes table seed k mod 5; its repeat r (``search.repeats`` or the
  race's rounds) observes seed (k + r) mod 5, as the tool numbers repeats (spec seed + r).
- A sampled proposal whose values equal those of a searched trial trained before (COMPLETE
  or PRUNED; not a reference) is not trained: it is told that trial's outcome at no
  cost and records nothing at ASHA's rungs, and after 50 such proposals in a row the search
  ends, as the tool does (``engine/searcher.py``; its limit is max(50, search.trials)); the
  replay also stops such a search at 400 proposals (for time; not the tool's).
  The "before" rows replay the tool before that change: every proposal trained and paid.
- ``*+asha``: the per-epoch Δm values go through the rule of Ray Tune's ``ASHAScheduler``
  as share-search configures it (one bracket, reduction factor 3), here with grace period 1
  (rungs at epochs 1, 3, 9, 27): at a rung a trial stops when its value is below the (1 - 1/3)
  quantile of the values earlier trials recorded at that rung (Li et al. 2020, "A System
  for Massively Parallel Hyperparameter Tuning", MLSys). Per-epoch values are reported to
  the Optuna trial and a stopped trial is told PRUNED, as the tool does. ``tpe+asha-g3``:
  grace period 3 (rungs at 3, 9, 27), the tool's default.
- TPE (Bergstra, Bardenet, Bengio, Kégl 2011, "Algorithms for Hyper-Parameter
  Optimization", NeurIPS) with the tool's settings: multivariate, group, constant liar,
  10 start-up trials. Random: Optuna's RandomSampler on the same define-by-run space
  (not uniform over trees: a tree's chance follows the nested choices).

Strategies compared at equal compute (a budget in trial-epochs; a search runs trials while
one more could still finish within the budget):
(a)  one seed per architecture, TPE + ASHA grace 3 (the tool's defaults); exports its best
     observed trial. "(a) before": the same with every re-proposal retrained.
(b)  ``search.repeats: 2``: each architecture on 2 seeds, the objective their mean paired Δm;
     TPE without a scheduler, because the tool refuses ASHA with repeats > 1.
(c)  (a) then the confirmation race: the top K distinct architectures by observed value get
     one more seed per round, up to S seeds, and after each round
     ``share_search.runs.race.race_round`` (alpha 0.05) drops those clearly worse than the
     leader; the race's leader is exported. The search is cut so that the race's largest
     possible cost, (S - 1) x (K + 1) x 30 trial-epochs, fits the budget; the compute shown is
     what it really spent. "(c) before": raced after "(a) before".

Run from the repository root:
    python benchmarks/b3_search_efficiency.py replay --quick     # 5 sampler seeds, 3 budgets, a minute
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
SEEDS = (0, 1, 2, 3, 4)
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
COLUMNS = ["arch", "role", "seed", "epoch", "selected", "best_epochs", *(f"val.{t}" for t in TASKS), "train_loss", "val_loss", "params", "macs", "fit_s"]


def problem():
    from share_search.train.problem import load_problem
    from share_search.spec.model import parse_spec

    return load_problem(parse_spec(SPEC))


# --------------------------------------------------------------------------- table
def build_table(out: Path, limit: int | None, epochs: int) -> None:
    """Train the space exhaustively (every seed x every tree) and append rows to ``out``.

    Seed by seed, as a search measures a trial: the single-task baseline of that seed first
    (each column at its own best epoch), then every tree with that baseline handed to ``fit``
    exactly as ``engine.trial.run_trial`` hands it (``delta_m_baseline``), so every tree's
    epoch is the one the tool selects (Δm of the validation metrics against that baseline)."""
    import torch

    from share_search.arch import build_model
    from share_search.arch._cost import count_macs, count_parameters
    from share_search.arch.tree import TreeConfig
    from share_search.engine.trial import delta_m_baseline
    from share_search.space.spaces import default_train_values, space_info, train_config
    from share_search.spec.registry import FAMILY_SPACES
    from share_search.train.loop import fit
    from dataclasses import replace

    torch.set_num_threads(1)
    p = problem()
    config = replace(train_config(p.spec, default_train_values(p.spec)), epochs=epochs, device="cpu")
    info = space_info(p)
    trees = FAMILY_SPACES["tree"].enumerate(list(info.task_names), info.n_stages, p.spec.families["tree"])
    independent = TreeConfig.independent(p.task_names, info.n_stages)
    jobs = [t for t in trees[:limit] if t != independent]
    done = set()
    if out.exists():
        with out.open() as f:
            rows = list(csv.DictReader(f))
        if rows and "best_epochs" not in rows[0]:
            raise SystemExit(f"{out} was written by the old table step (one joint selection, no best_epochs column): move it away first")
        done = {(r["arch"], int(r["seed"])) for r in rows}
    print(f"{len(trees)} trees in the space; {(len(jobs) + 1) * len(SEEDS) - len(done)} fits to go -> {out}", flush=True)
    new = not out.exists()
    with out.open("a", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=COLUMNS)
        if new:
            writer.writeheader()

        def train(arch, seed: int, baseline):
            model = build_model(arch, p.backbone, p.tasks)
            params, macs = count_parameters(model), count_macs(model, p.backbone.input_shape)
            result = fit(model, p.data, p.tasks, replace(config, seed=seed), baseline=delta_m_baseline(p, baseline))
            for t in TASKS:  # the selected weights give the selected epoch's values (the columns' too): the table can rebuild them
                recorded = result.history[result.best_epochs[t] - 1][f"{t}.accuracy"]
                if abs(recorded - result.val[t]["accuracy"]) > 1e-9:
                    raise SystemExit(f"{arch.summary()} seed {seed}: {t}'s selected accuracy {result.val[t]['accuracy']} differs from epoch {result.best_epochs[t]}'s {recorded}")
            return result, params, macs

        for seed in SEEDS:
            if all((a.summary(), seed) in done for a in [independent, *jobs]):
                continue
            # The baseline is retrained on resume too (the CPU fit is deterministic): rows keep 6 decimals, the baseline must be exact.
            base, params, macs = train(independent, seed, None)
            baseline = base.val
            for arch in [independent, *jobs]:
                if (arch.summary(), seed) in done:
                    continue
                # The single-task networks are a tree of the space: as a trial they select per column whatever the baseline, i.e. they are the baseline.
                result, params, macs = (base, params, macs) if arch == independent else train(arch, seed, baseline)
                epochs_by_task = ";".join(f"{t}:{result.best_epochs[t]}" for t in TASKS)
                for h in result.history:
                    writer.writerow(
                        {
                            "arch": arch.summary(), "role": "single_task" if arch == independent else "", "seed": seed, "epoch": h["epoch"],
                            "selected": int(h["epoch"] == result.best_epoch), "best_epochs": epochs_by_task,
                            **{f"val.{t}": f"{h[f'{t}.accuracy']:.6f}" for t in TASKS},
                            "train_loss": f"{h['train_loss']:.6f}", "val_loss": f"{h['val_loss']:.6f}",
                            "params": params, "macs": macs, "fit_s": f"{result.wall_time_s:.2f}",
                        }
                    )
                f.flush()
                print(f"seed {seed}  {arch.summary():70s} {result.wall_time_s:5.1f} s  epochs {epochs_by_task}", flush=True)


# --------------------------------------------------------------------------- the table as arrays
UP = {t: {"accuracy": True} for t in TASKS}  # Δm's terms: each task's accuracy, higher is better


def as_metrics(values: dict[str, float]) -> dict[str, dict[str, float]]:
    """task -> accuracy as ``delta_m`` takes it (task -> metric -> value)."""
    return {t: {"accuracy": v} for t, v in values.items()}


class Table:
    """Per (architecture, seed): Δm at every epoch and at the selected epochs, each against
    the single-task baseline of the same seed (paired, as the tool measures a seed)."""

    def __init__(self, path: Path):
        from share_search.runs.rank import delta_m
        from share_search.runs.uncertainty import mean_and_se

        rows = list(csv.DictReader(path.open()))
        if rows and "best_epochs" not in rows[0]:
            raise SystemExit(f"{path} was written by the old table step (no best_epochs column): run `table` again")
        self.epochs = max(int(r["epoch"]) for r in rows)
        acc: dict[tuple[str, int], dict[int, dict[str, float]]] = {}
        chosen: dict[tuple[str, int], dict[str, int]] = {}  # task -> its selected epoch
        self.roles: dict[str, str] = {}
        self.fit_s: dict[str, list[float]] = {}
        for r in rows:
            key = (r["arch"], int(r["seed"]))
            acc.setdefault(key, {})[int(r["epoch"])] = {t: float(r[f"val.{t}"]) for t in TASKS}
            chosen[key] = {t: int(e) for t, e in (item.split(":") for item in r["best_epochs"].split(";"))}
            if r["selected"] == "1":
                self.fit_s.setdefault(r["arch"], []).append(float(r["fit_s"]))
            self.roles[r["arch"]] = r["role"]
        self.baseline_arch = next(a for a, role in self.roles.items() if role == "single_task")
        self.archs = list(self.roles)  # the single-task networks are a tree of this space (first_stage_shared: false)
        missing = [(a, s) for a in self.archs for s in SEEDS if len(acc.get((a, s), {})) < self.epochs]
        if missing:
            raise SystemExit(f"{path}: {len(missing)} (architecture, seed) pairs lack rows, e.g. {missing[0]}; finish `table` first")
        self.chosen = chosen
        selected = {k: {t: acc[k][e][t] for t, e in chosen[k].items()} for k in acc}  # each task at its selected epoch
        self.baseline = {s: selected[(self.baseline_arch, s)] for s in SEEDS}
        paired = lambda values, s: delta_m(as_metrics(values), as_metrics(self.baseline[s]), UP)
        self.curve = {k: [paired(acc[k][e], k[1]) for e in range(1, self.epochs + 1)] for k in acc}  # what ASHA is told each epoch
        self.final = {k: paired(selected[k], k[1]) for k in acc}  # the trial's Δm
        spread = {a: mean_and_se([self.final[(a, s)] for s in SEEDS]) for a in self.archs}
        self.truth = {a: v.mean for a, v in spread.items()}
        self.se = {a: v.se for a, v in spread.items()}
        self.task_acc = {a: {t: float(np.mean([selected[(a, s)][t] for s in SEEDS])) for t in TASKS} for a in self.archs}
        self.best_arch = max(self.truth, key=self.truth.get)
        self.best = self.truth[self.best_arch]
        # "truly best": a mean within one standard error (of the best's mean) of the best mean
        self.targets = {a for a, v in self.truth.items() if v >= self.best - self.se[self.best_arch]}
        searched = [a for a in self.archs if a != self.baseline_arch]  # the baseline's paired Δm is 0 on every seed
        self.noise_sd = float(np.mean([np.std([self.final[(a, s)] for s in SEEDS], ddof=1) for a in searched]))
        self.noise = float(np.mean([abs(self.final[(a, s)] - self.final[(a, u)]) for a in searched for s, u in seed_pairs()]))
        self.spread = self.best - float(np.median(list(self.truth.values())))

    def rank_correlations(self) -> list[float]:
        """Spearman over the trees between every two seeds."""
        from scipy.stats import spearmanr

        return [float(spearmanr([self.final[(a, s)] for a in self.archs], [self.final[(a, u)] for a in self.archs]).statistic) for s, u in seed_pairs()]


def seed_pairs() -> list[tuple[int, int]]:
    return [(s, u) for i, s in enumerate(SEEDS) for u in SEEDS[i + 1 :]]


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


def seeds_of(sampler_seed: int, count: int) -> list[int]:
    """The training seeds a search observes: sampler seed k starts at table seed k mod 5, and
    repeat r (of ``search.repeats`` or of the race) is the next seeds, as ``seed_of_repeat``
    (spec seed + r) numbers them."""
    first = sampler_seed % len(SEEDS)
    return [SEEDS[(first + r) % len(SEEDS)] for r in range(count)]


def search(table: Table, sampler_name: str, sampler_seed: int, repeats: int = 1, max_epochs: float = math.inf,
           max_trials: float = math.inf, stop=None, dedupe: bool = False) -> list[dict]:
    """One search against the table at concurrency 1; its trials in order: architecture,
    observed value (None when ASHA stopped it), trial-epochs it trained (all its seeds) and
    trial-epochs spent so far. ``repeats`` seeds per trial, the objective their mean paired Δm
    (what ``search.repeats`` tells Optuna); ``stop(trials)`` may end the search early;
    ``max_trials`` counts trained trials. ``dedupe`` models the tool: a proposal with the values
    of a trial trained before is told that trial's outcome without training (no compute,
    nothing recorded at ASHA's rungs; ``duplicate`` set), and ``DUPLICATE_LIMIT`` of them in
    a row end the search, as does the replay's own cap of ``DEDUPE_PROPOSALS`` proposals (its
    last trial then has ``exhausted`` set). Without it (the tool before), every proposal is
    trained."""
    import optuna
    from optuna.trial import TrialState

    from share_search.engine.searcher import DUPLICATE_LIMIT
    from share_search.space.spaces import arch_params, reference_archs, sample_trial

    p = table.problem
    seeds = seeds_of(sampler_seed, repeats)
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
    if asha is not None and repeats > 1:
        raise ValueError("the tool refuses search.scheduler with repeats > 1 (spec/model.py)")
    trials, spent, first, trained_trials, in_a_row = [], 0, {}, 0, 0
    while spent < max_epochs and trained_trials < max_trials and len(trials) < (DEDUPE_PROPOSALS if dedupe else math.inf):
        trial = study.ask()
        arch = sample_trial(trial, p).arch.summary()
        key = tuple(sorted(trial.params.items()))  # the tool compares the planned values (runs.study.searched_twin)
        if dedupe and key in first:
            before = first[key]
            if before["value"] is None:  # a PRUNED twin: its intermediate values, then PRUNED, as the tool tells it
                for epoch, value in enumerate(table.curve[(arch, seeds[0])][: before["epochs"]], start=1):
                    trial.report(value, epoch)
            study.tell(trial, before["value"], state=TrialState.COMPLETE if before["value"] is not None else TrialState.PRUNED)
            trials.append({**before, "epochs": 0, "spent": spent, "reference": False, "duplicate": True})
            in_a_row += 1
            if in_a_row >= DUPLICATE_LIMIT or len(trials) >= DEDUPE_PROPOSALS:
                trials[-1]["exhausted"] = True
                break
            continue
        in_a_row = 0
        trained_trials += 1
        scheduled = asha is not None and len(trials) >= references
        trained = 0
        for epoch, value in enumerate(table.curve[(arch, seeds[0])], start=1):  # Optuna gets the first seed's curve, as the tool reports it
            trained += 1
            trial.report(value, epoch)
            if scheduled and not asha.continues(epoch, value):
                break
        if trained < table.epochs:
            study.tell(trial, state=TrialState.PRUNED)
            value = None
        else:
            trained *= repeats
            value = float(np.mean([table.final[(arch, s)] for s in seeds]))
            study.tell(trial, value)
        spent += trained
        trials.append({"arch": arch, "value": value, "epochs": trained, "spent": spent, "reference": len(trials) < references})
        if dedupe and len(trials) >= DEDUPE_PROPOSALS:
            trials[-1]["exhausted"] = True
        if not trials[-1]["reference"]:  # a re-proposal of a reference is trained (once): the tool compares searched trials only
            first.setdefault(key, trials[-1])
        if stop is not None and stop(trials):
            break
    return trials


def within(trials: list[dict], budget: float, longest: int, capped: bool = False) -> list[dict] | None:
    """The search a budget of ``budget`` trial-epochs buys: trials in order while one more
    could still finish within it (``longest``: a full trial's trial-epochs); None when the
    references alone do not fit. ``capped``: the search ended by itself (the sampler proposed
    only trained architectures), so a larger budget buys the whole of it."""
    out = []
    for t in trials:
        if (out[-1]["spent"] if out else 0) + longest > budget:
            break
        out.append(t)
    if sum(t["reference"] for t in trials) > len(out) or not capped and len(out) == len(trials) and trials[-1]["spent"] + longest <= budget:
        return None  # the references do not fit, or the search log is too short for this budget
    return out


def best_observed(trials: list[dict], k: int = 1) -> list[str]:
    """The ``k`` distinct architectures with the best observed values, best first (ties: the earlier trial)."""
    out = []
    for t in sorted((t for t in trials if t["value"] is not None), key=lambda t: -t["value"]):
        if t["arch"] not in out:
            out.append(t["arch"])
    return out[:k]


def confirm(table: Table, candidates: list[str], seeds: list[int], left: float = math.inf) -> tuple[str, int, int]:
    """The confirmation race on the table: ``candidates`` (best observed first) hold their
    search seed ``seeds[0]``; each round every survivor trains the next seed, and so does the
    single-task baseline (paired Δm needs it); ``share_search.runs.race.race_round`` drops the
    clearly worse. ``left``: trial-epochs the race may spend (it stops before a round that
    does not fit). Returns the leader, the trial-epochs the race trained, and its rounds."""
    from share_search.runs.race import race_is_over, race_round

    values = {a: {0: table.final[(a, seeds[0])]} for a in candidates}
    survivors, leader, spent, have = list(candidates), candidates[0], 0, 1
    while not race_is_over(len(survivors), have, len(seeds)):
        cost = table.epochs * (len(survivors) + 1)
        if spent + cost > left:
            break
        spent += cost
        for a in survivors:
            values[a][have] = table.final[(a, seeds[have])]
        have += 1
        outcome = race_round({a: values[a] for a in survivors}, ALPHA)
        survivors, leader = outcome.survivors, outcome.leader
    return leader, spent, have - 1


def race_reserve(top: int, max_seeds: int, epochs: int) -> int:
    """The most a race can train: every candidate and the baseline on every further seed."""
    return (max_seeds - 1) * (top + 1) * epochs


def exported(table: Table, strategy: dict, logs: dict, sampler_seed: int, budget: float) -> dict | None:
    """What one strategy exports at a budget of trial-epochs, and what it spent; None when it does not fit."""
    trials = logs[(strategy["search"], sampler_seed)]
    repeats = strategy.get("repeats", 1)
    race = strategy.get("race")
    reserve = race_reserve(*race, table.epochs) if race and not strategy.get("leftover") else 0
    done = within(trials, budget - reserve, table.epochs * repeats, capped=bool(trials) and trials[-1].get("exhausted", False))
    if not done:
        return None
    spent = done[-1]["spent"]
    if race is None:
        arch = best_observed(done)[0]
    else:
        left = budget - spent if strategy.get("leftover") else math.inf
        arch, race_spent, _ = confirm(table, best_observed(done, race[0]), seeds_of(sampler_seed, race[1]), left)
        spent += race_spent
    return {"arch": arch, "truly_best": arch in table.targets, "spent": spent}


# the replay's cap on proposals of a search that does not retrain re-proposals (for time: TPE's
# proposals grow slower with the study; the tool has no such cap, it ends at DUPLICATE_LIMIT in a row)
DEDUPE_PROPOSALS = 400
# the searches as the tool runs them: a re-proposal is not retrained ("dedupe")
DEFAULT, BEFORE = ("tpe+asha-g3", 1, "dedupe"), ("tpe+asha-g3", 1)
STRATEGIES = {  # name -> the search it reads (sampler, repeats[, "dedupe"]) and what follows it
    "(a) one seed, TPE + ASHA g3": {"search": DEFAULT},
    "(a') one seed, TPE, no scheduler": {"search": ("tpe", 1, "dedupe")},
    "(b) repeats 2, TPE (ASHA is refused with repeats)": {"search": ("tpe", 2, "dedupe"), "repeats": 2},
    "(c) (a) + race K=2 S=3": {"search": DEFAULT, "race": (2, 3)},
    "(c) (a) + race K=2 S=2": {"search": DEFAULT, "race": (2, 2)},
    "(c) (a) + race K=3 S=3": {"search": DEFAULT, "race": (3, 3)},
    "(c) (a) + race K=5 S=3": {"search": DEFAULT, "race": (5, 3)},
    "(c) (a) + race K=3 S=4": {"search": DEFAULT, "race": (3, 4)},
    "(c) (a) + race K=3 S=5": {"search": DEFAULT, "race": (3, 5)},
    # not what the tool does: no reserve, the race spends only what the search left (it ends by itself, see README)
    "(c') (a) + race K=2 S=3 on what the search left": {"search": DEFAULT, "race": (2, 3), "leftover": True},
    # not the tool's default sampler: whether a search that explores more leaves the race something to confirm
    "(d) one seed, random + ASHA g3": {"search": ("random+asha-g3", 1, "dedupe")},
    "(d) + race K=2 S=3": {"search": ("random+asha-g3", 1, "dedupe"), "race": (2, 3)},
    "(d) + race K=3 S=3": {"search": ("random+asha-g3", 1, "dedupe"), "race": (3, 3)},
    # the tool before re-proposals were told instead of retrained: every proposal trained and paid
    "(a) before: re-proposals retrained": {"search": BEFORE},
    "(c) before: (a) before + race K=2 S=3": {"search": BEFORE, "race": (2, 3)},
}
BUDGETS = (0.1, 0.15, 0.2, 0.25, 0.3, 0.4, 0.5, 0.75, 1.0)  # fractions of exhaustive compute
ALPHA = 0.05


def compare(table: Table, n_seeds: int, budgets: tuple[float, ...], exhaustive: int) -> dict:
    """Every strategy at every budget over ``n_seeds`` sampler seeds: P(exported is truly
    best) and the compute it spent, as fractions of exhaustive."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    logs = {}
    for key in dict.fromkeys(s["search"] for s in STRATEGIES.values()):
        sampler, repeats, *dedupe = key
        started = time.perf_counter()
        for k in range(n_seeds):  # one search per sampler seed, long enough for the largest budget; a smaller budget reads its start
            logs[(key, k)] = search(table, sampler, k, repeats, max_epochs=max(budgets) * exhaustive + table.epochs * repeats, dedupe=bool(dedupe))
        print(f"  {key}: {n_seeds} searches in {time.perf_counter() - started:.1f} s", flush=True)
    out = {}
    for name, strategy in STRATEGIES.items():
        out[name] = {}
        for b in budgets:
            runs = [exported(table, strategy, logs, k, b * exhaustive) for k in range(n_seeds)]
            if any(r is None for r in runs):
                continue
            out[name][str(b)] = {
                "p_truly_best": float(np.mean([r["truly_best"] for r in runs])),
                "compute_mean": float(np.mean([r["spent"] for r in runs])) / exhaustive,
                "compute_max": max(r["spent"] for r in runs) / exhaustive,
                "regret_mean": float(np.mean([table.best - table.truth[r["arch"]] for r in runs])),
                "exported": {a: sum(r["arch"] == a for r in runs) for a in sorted({r["arch"] for r in runs})},
            }
    return out


def exhaustive_picks(table: Table) -> dict:
    """Every tree once on one seed (exhaustive compute), then pick its best, with and without a race."""
    out = {"one seed": [], **{f"race K={k} S={s}": [] for k, s in ((3, 3), (3, 5), (5, 5))}}
    for i, seed in enumerate(SEEDS):
        ranked = sorted(table.archs, key=lambda a: -table.final[(a, seed)])
        out["one seed"].append({"seed": seed, "arch": ranked[0], "truly_best": ranked[0] in table.targets, "compute": 1.0})
        for k, s in ((3, 3), (3, 5), (5, 5)):
            leader, spent, _ = confirm(table, ranked[:k], seeds_of(i, s))
            out[f"race K={k} S={s}"].append({"seed": seed, "arch": leader, "truly_best": leader in table.targets,
                                            "compute": 1.0 + spent / (len(table.archs) * table.epochs)})
    return out


def first_hits(trials: list[dict], targets: set[str]) -> dict:
    """Trial-epochs until a target is trained ('found') and until the search's own best is one ('incumbent')."""
    found = incumbent = None
    best, best_arch = -math.inf, None
    for n, t in enumerate(trials, start=1):
        if t["value"] is not None:
            if found is None and t["arch"] in targets:
                found = {"trials": n, "epochs": t["spent"]}
            if t["value"] > best:
                best, best_arch = t["value"], t["arch"]
        if incumbent is None and best_arch in targets:
            incumbent = {"trials": n, "epochs": t["spent"]}
    return {"found": found, "incumbent": incumbent}


BEFORE_SUFFIX = " before"


def run_replays(table: Table, samplers: list[str], n_seeds: int, max_trials: int) -> list[dict]:
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    out = []
    done = lambda trials: all(first_hits(trials, table.targets).values())
    for name in samplers:  # "<sampler> before": every re-proposal retrained, as the tool did before
        started = time.perf_counter()
        for k in range(n_seeds):
            trials = search(table, name.removesuffix(BEFORE_SUFFIX), k, max_trials=max_trials, stop=done, dedupe=not name.endswith(BEFORE_SUFFIX))
            out.append({"sampler": name, "sampler_seed": k, "observed_seed": seeds_of(k, 1)[0], **first_hits(trials, table.targets),
                        "trials": len(trials), "trained": sum(not t.get("duplicate") for t in trials), "distinct": len({t["arch"] for t in trials if t["value"] is not None})})
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


def qualify(table: Table) -> dict:
    """Whether architectures really differ here: spread against seed noise, rank agreement between seeds."""
    from scipy.stats import spearmanr

    n_arch = len(table.archs)
    ranked = sorted(table.archs, key=table.truth.get, reverse=True)
    print_table(
        f"B3 space: {n_arch} trees, planted data (b3_data.py), 4 tasks, mlp {SPEC['backbone']['options']['widths']}, "
        f"{table.epochs} epochs, seeds {list(SEEDS)} (Δm in %, each seed against its own seed's single-task networks; "
        "top 8, bottom 3 and named trees; * truly best; task columns: validation accuracy %, mean over seeds)",
        ["rank", "architecture", *(f"Δm s{s}" for s in SEEDS), "Δm mean", "± se", *TASKS, "fit s"],
        [
            [f"{i + 1}{'*' if a in table.targets else ''}", a, *(table.final[(a, s)] for s in SEEDS), table.truth[a], table.se[a],
             *(100 * table.task_acc[a][t] for t in TASKS), median(table.fit_s[a])]
            for i, a in enumerate(ranked)
            if i < 8 or i >= n_arch - 3 or a in NAMED.values()
        ],
    )
    rhos = table.rank_correlations()
    space = {
        "architectures": n_arch,
        "seeds": list(SEEDS),
        "best": table.best_arch,
        "best_delta_m": table.best,
        "best_se": table.se[table.best_arch],
        "median_delta_m": float(np.median(list(table.truth.values()))),
        "spread": table.spread,
        "seed_noise_sd": table.noise_sd,
        "seed_noise_pairwise": table.noise,
        "spread_over_noise_sd": table.spread / table.noise_sd,
        "spread_over_noise_pairwise": table.spread / table.noise,
        "truly_best": {a: {"delta_m": table.truth[a], "se": table.se[a]} for a in sorted(table.targets, key=table.truth.get, reverse=True)},
        "spearman_seed_pairs": {f"{s}-{u}": r for (s, u), r in zip(seed_pairs(), rhos)},
        "spearman_mean": float(np.mean(rhos)),
        "named": {name: {"arch": a, "delta_m": table.truth.get(a), "se": table.se.get(a), "rank": ranked.index(a) + 1} for name, a in NAMED.items() if a in table.truth},
        "exhaustive_trial_epochs": n_arch * table.epochs,
        "exhaustive_fit_s_median": median([median(v) for v in table.fit_s.values()]),
        "baseline_val_accuracy_by_seed": {str(s): v for s, v in table.baseline.items()},
        "selected_epoch_median": median([table.chosen[(a, s)][TASKS[0]] for a in table.archs if a != table.baseline_arch for s in SEEDS]),
        "baseline_selected_epochs": {str(s): table.chosen[(table.baseline_arch, s)] for s in SEEDS},
    }
    space["spearman_epoch_vs_final"] = {  # how well an early rung predicts the final ranking (mean over seeds)
        e: float(np.mean([spearmanr([table.curve[(x, s)][e - 1] for x in table.archs], [table.final[(x, s)] for x in table.archs]).statistic for s in SEEDS]))
        for e in (1, 3, 9, 27) if e <= table.epochs
    }
    print_table(
        "B3 spread against noise (truly best: mean Δm within one standard error of the best mean)",
        ["architectures", "best Δm", "± se", "median Δm", "spread", "seed sd", "mean |Δm(s) - Δm(s')|", "spread / sd", "truly best", "Spearman between seeds: mean (min-max)"],
        [[n_arch, table.best, table.se[table.best_arch], space["median_delta_m"], table.spread, table.noise_sd, table.noise,
          table.spread / table.noise_sd, len(table.targets), f"{np.mean(rhos):.2f} ({min(rhos):.2f}-{max(rhos):.2f})"]],
    )
    print_table(
        "B3 how early epochs predict the final ranking (Spearman over the trees, mean over seeds)",
        [f"epoch {e}" for e in space["spearman_epoch_vs_final"]],
        [list(space["spearman_epoch_vs_final"].values())],
    )
    return space


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("step", nargs="?", choices=["replay", "table"], default="replay")
    ap.add_argument("--quick", action="store_true", help="replay: 5 sampler seeds instead of 50, fewer budgets")
    ap.add_argument("--seeds", type=int, help="replay: sampler seeds per sampler (default 50, quick 5)")
    ap.add_argument("--csv", type=Path, default=TABLE, help="the exhaustive table (default benchmarks/b3_table.csv)")
    ap.add_argument("--limit", type=int, help="table: only the first N trees (a smoke check)")
    ap.add_argument("--epochs", type=int, default=EPOCHS, help="table: epochs per fit")
    ap.add_argument("--json", help="where to write the result JSON (default results/b3_search_efficiency[_quick].json)")
    args = ap.parse_args(argv)
    if args.step == "table":
        build_table(args.csv, args.limit, args.epochs)
        return 0

    started = time.perf_counter()
    table = Table(args.csv)
    table.problem = problem()
    exhaustive = len(table.archs) * table.epochs
    space = qualify(table)
    n_seeds = args.seeds or (5 if args.quick else 50)

    picks = exhaustive_picks(table)
    print_table(
        "B3 exhaustive (every tree once on one seed), then its best, alone or raced; over the 5 table seeds",
        ["pick", "P(truly best)", "compute (fraction of exhaustive), mean"],
        [[name, float(np.mean([r["truly_best"] for r in rows])), float(np.mean([r["compute"] for r in rows]))] for name, rows in picks.items()],
    )
    budgets = (0.1, 0.2, 0.3) if args.quick else BUDGETS
    comparison = compare(table, n_seeds, budgets, exhaustive)
    print_table(
        f"B3 at equal compute: P(exported architecture is truly best) over {n_seeds} sampler seeds, at budgets in fractions of "
        f"exhaustive ({exhaustive} trial-epochs); in brackets the compute spent, mean (race: the search is cut so that its "
        "largest possible race fits the budget); goal P >= 0.9 at <= 0.3",
        ["strategy", *(f"{b:g}" for b in budgets)],
        [[name, *(f"{c[str(b)]['p_truly_best']:.2f} ({c[str(b)]['compute_mean']:.2f})" if str(b) in c else "-" for b in budgets)]
         for name, c in comparison.items()],
    )

    # Compute until a truly best tree is trained ('found') / is the search's own best ('incumbent'), one seed observed
    samplers = ["random", "tpe", "tpe+asha", "random+asha", "tpe+asha-g3", "tpe+asha-g3" + BEFORE_SUFFIX]
    results = run_replays(table, samplers, n_seeds, max_trials=3 * len(table.archs))
    rows, summary = [], {}
    for name in samplers:
        mine = [r for r in results if r["sampler"] == name]
        found, inc = summarise(mine, "found", exhaustive), summarise(mine, "incumbent", exhaustive)
        summary[name] = {"found": found, "incumbent": inc}
        rows.append([name, len(mine), found["median"], f"{found['p25']:.2f}-{found['p75']:.2f}", found["max"], found["within_25pct"], inc["median"], f"{inc['p25']:.2f}-{inc['p75']:.2f}", inc["not_found"]])
    print_table(
        f"B3 replay: trial-epochs until a truly best tree is trained ('found') / until the search's own best is one "
        f"('incumbent'), as a fraction of exhaustive compute ({exhaustive} trial-epochs); goal: median <= 0.25",
        ["sampler", "seeds", "found median", "found IQR", "found max", "share <= 0.25", "incumbent median", "incumbent IQR", "incumbent never"],
        rows,
    )
    write_json(
        "b3_search_efficiency" + ("_quick" if args.quick else ""),
        {"mode": "quick" if args.quick else "full", "sampler_seeds": n_seeds, "space": space, "alpha": ALPHA,
         "strategies": {name: {"search": list(s["search"]), "race_top_max_seeds": s.get("race")} for name, s in STRATEGIES.items()},
         "exhaustive_picks": picks, "comparison": comparison, "summary": summary, "replays": results,
         "seconds": time.perf_counter() - started},
        args.json,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
