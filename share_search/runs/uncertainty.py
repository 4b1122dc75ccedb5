"""How sure a ranking is: means and standard errors over seeds, and which architectures the
seeds cannot separate from the best one.

An architecture trained with k seeds (``search.repeats``) has k values of each metric and
k paired Δm (each seed against the single-task networks of the same seed). Its mean ranks
it; its standard error, s / √k with s the sample standard deviation, says how far the mean
may move with other seeds. Two architectures are compared seed by seed: the same seed gave
both their initial weights' generator and their data order, so the per-seed differences
cancel what the seed does to both (Student's paired t-test, two-sided; irace's ``t-test``
option races candidates with it, López-Ibáñez et al. 2016). An architecture is
``tied_with_best`` when that test cannot tell it from rank 1 at ``TIE_ALPHA``; with one seed
no spread is known and nothing can be told apart, so the column is left empty, never a tie
and never a win.

Pure functions on numbers and pandas tables: no Ray, Optuna or torch.
"""

from __future__ import annotations

import math
from typing import Mapping, NamedTuple, Sequence

import numpy as np
import pandas as pd

TIE_ALPHA = 0.05
TIE_TEST = (
    f"tied_with_best: a two-sided paired t-test over the seeds both architectures share (the same seed, "
    f"paired) cannot tell it from rank 1 at α = {TIE_ALPHA}; empty with fewer than 2 shared seeds, where "
    f"nothing can be told apart."
)
REPEATS_STATEMENT = (
    "Each architecture's value is the mean over its seeds (± standard error, s/√n); its Δm is the mean of "
    "per-seed Δm, each seed against the single-task networks trained with the same seed (paired)."
)


class Spread(NamedTuple):
    mean: float
    se: float  # NaN with fewer than two values


def mean_and_se(values: Sequence[float]) -> Spread:
    """The mean and its standard error (sample standard deviation / √n); NaN mean for no
    values or any NaN, NaN error below two values. One value is returned exactly."""
    xs = [float(v) for v in values]
    if not xs or any(math.isnan(x) for x in xs):
        return Spread(math.nan, math.nan)
    mean = math.fsum(xs) / len(xs)
    if len(xs) < 2:
        return Spread(mean, math.nan)
    var = math.fsum((x - mean) ** 2 for x in xs) / (len(xs) - 1)
    return Spread(mean, math.sqrt(var / len(xs)))


def paired_p_value(best: Mapping[int, float], other: Mapping[int, float]) -> float:
    """Two-sided p-value of Student's paired t-test of the per-seed differences over the
    seeds (repeat -> value) both have; NaN with fewer than two shared seeds or a NaN value.
    Identical differences: 1.0 when all are zero, 0.0 otherwise (nothing varies, so any
    difference is certain)."""
    shared = sorted(set(best) & set(other))
    diffs = np.array([float(best[r]) - float(other[r]) for r in shared], dtype=float)
    if len(diffs) < 2 or np.isnan(diffs).any():
        return math.nan
    mean, sd = float(diffs.mean()), float(diffs.std(ddof=1))
    if sd == 0.0:
        return 1.0 if mean == 0.0 else 0.0
    from scipy.stats import t as student_t

    statistic = mean / (sd / math.sqrt(len(diffs)))
    return float(2.0 * student_t.sf(abs(statistic), df=len(diffs) - 1))


def row_metrics(row: Mapping[str, float], columns: Mapping[str, Mapping[str, str]]) -> dict[str, dict[str, float]]:
    """A table row's metrics as ``delta_m`` takes them: task -> metric -> the value of its column."""
    return {task: {metric: row[column] for metric, column in of_task.items()} for task, of_task in columns.items()}


def per_seed_delta_m(
    seeds: pd.DataFrame, baseline_trial: int | None, columns: Mapping[str, Mapping[str, str]], higher_is_better, delta_m,
) -> pd.Series:
    """Δm of every seed row (``trial``, ``repeat``, metric columns) against the baseline
    trial's row of the same repeat (paired); NaN where that seed of the baseline is missing.
    ``delta_m(metrics, baseline, higher_is_better)`` is ``rank.delta_m``."""

    if baseline_trial is None:
        return pd.Series(math.nan, index=seeds.index, dtype=float)
    reference = {int(row["repeat"]): row_metrics(row, columns) for row in seeds[seeds["trial"] == baseline_trial].to_dict("records")}
    values = [
        delta_m(row_metrics(row, columns), reference[int(row["repeat"])], higher_is_better) if int(row["repeat"]) in reference else math.nan
        for row in seeds.to_dict("records")
    ]
    return pd.Series(values, index=seeds.index, dtype=float)


def add_uncertainty(board: pd.DataFrame, seeds: pd.DataFrame, value_columns: Sequence[str], key: str | None) -> pd.DataFrame:
    """``board`` (ranked, best first) with ``n_seeds``, ``<column>.se`` for each of
    ``value_columns`` (read per seed from ``seeds``; ``delta_m`` among them), and, when
    ``key`` (the seed table's column the ranking compares) is given, ``p_vs_best`` and
    ``tied_with_best`` against rank 1 (rank 1 itself: True). Unranked rows get neither."""
    by_trial = {int(n): group for n, group in seeds.groupby("trial")}
    empty = seeds.iloc[0:0]
    rows = [by_trial.get(int(n), empty) for n in board["trial"]]
    board["n_seeds"] = pd.Series([len(g) for g in rows], index=board.index, dtype="Int64")
    for column in value_columns:
        board[f"{column}.se"] = [mean_and_se(list(g[column])).se for g in rows]
    board["p_vs_best"] = math.nan
    board["tied_with_best"] = pd.Series(pd.NA, index=board.index, dtype="boolean")
    first = board.index[board["rank"].eq(1).fillna(False)]
    if key is None or first.empty:
        return board
    best = _by_repeat(rows[board.index.get_loc(first[0])], key)
    for i, (index, rank) in enumerate(zip(board.index, board["rank"])):
        if pd.isna(rank):
            continue
        if rank == 1:
            board.loc[index, "tied_with_best"] = True
            continue
        p = paired_p_value(best, _by_repeat(rows[i], key))
        board.loc[index, "p_vs_best"] = p
        if not math.isnan(p):
            board.loc[index, "tied_with_best"] = p >= TIE_ALPHA
    return board


def _by_repeat(group: pd.DataFrame, column: str) -> dict[int, float]:
    return {int(r): float(v) for r, v in zip(group["repeat"], group[column])}


def separation_line(board: pd.DataFrame) -> str | None:
    """One line: is the winner told apart from the runner-up by its seeds, or tied with it?
    None when fewer than two architectures are ranked."""
    ranked = board[board["rank"].notna()].sort_values("rank")
    if len(ranked) < 2 or "tied_with_best" not in board.columns:
        return None
    win, run = ranked.iloc[0], ranked.iloc[1]
    what = board.attrs.get("tie_key_label", "Δm")
    column = board.attrs.get("tie_key")
    who = f"the winner (trial {int(win['trial'])}{_shown(win, column, what)}) and the runner-up (trial {int(run['trial'])}{_shown(run, column, what)})"
    tied = run["tied_with_best"]
    if column is None:
        return f"{who}: a Pareto ranking has no single best to test ties against"
    if pd.isna(tied):
        n = min(int(win["n_seeds"] or 0), int(run["n_seeds"] or 0)) if "n_seeds" in run else 0
        return (f"{who} cannot be told apart: with {n} seed{'s' if n != 1 else ''} per architecture no seed-to-seed "
                f"spread of {what} is known (search.repeats >= 2 measures it)")
    verdict = "TIED: the seeds cannot separate them" if tied else "SEPARATED: the winner is better beyond seed noise"
    return f"{who} are {verdict} (paired t-test over {int(run['n_seeds'])} seeds on {what}, p = {run['p_vs_best']:.3g}, α = {TIE_ALPHA})"


def _shown(row, column: str | None, label: str) -> str:
    if column is None or column not in row or pd.isna(row[column]):
        return ""
    se = row.get(f"{column}.se")
    spread = "" if se is None or pd.isna(se) else f" ± {se:.2g}"
    return f", {label} {row[column]:.4g}{spread}"
