"""Rank trials: Δm against the single-task baseline, Pareto fronts, the leaderboard.

Pure functions on a pandas table with one row per trial (``trial``, ``state``,
``baseline``, ``params``, ``macs``, ``val.<task>`` for each primary metric,
``val.<task>.<metric>`` for every metric, optionally ``test.<task>``), so the
ranking is tested without Ray, Optuna or torch. Only validation metrics choose; test
columns ride along untouched, so no architecture is chosen on its test score.
"""

from __future__ import annotations

import math
import re
from typing import Mapping, NamedTuple, Sequence

import numpy as np
import pandas as pd

from ..errors import ShareSearchError
from ..spec.model import DELTA_M_ALL_METRICS, DELTA_M_CONVENTIONS, DELTA_M_PRIMARY, RANK_KEYS
from ..train.selection import metric_value, relative_change
from .record import ROLE_SEARCHED, ROLE_SINGLE_TASK, TrialRecord, baseline_of
from .uncertainty import add_uncertainty, mean_and_se, per_seed_delta_m, row_metrics

DELTA_M_CONVENTION = (  # search.delta_m: primary
    "Δm = 100/T · Σ_t (−1)^l_t (M_m,t − M_b,t) / M_b,t: the mean relative change (in %, higher "
    "is better) of each task's validation metric against the single-task networks b, with "
    "l_t = 1 for lower-is-better metrics (Maninis et al. 2019; Vandenhende et al. 2021)."
)
DELTA_M_ALL_METRICS_CONVENTION = (  # search.delta_m: all_metrics
    "Δm = 100/T · Σ_t 1/M_t · Σ_m (−1)^l_t,m (M_m,t,m − M_b,t,m) / M_b,t,m: the relative change (in %, "
    "higher is better) of every validation metric of each task (its metric and extra_metrics) "
    "against the single-task networks b, averaged within each task first, then across the T "
    "tasks, with l_t,m = 1 for lower-is-better metrics (LibMTL's count_improvement, Lin & Zhang 2023)."
)
DELTA_M_STATEMENTS = {DELTA_M_PRIMARY: DELTA_M_CONVENTION, DELTA_M_ALL_METRICS: DELTA_M_ALL_METRICS_CONVENTION}
BUDGET_COLUMNS = ("params", "macs")


class RankError(ShareSearchError, ValueError):
    """Trials cannot be ranked as asked (no baseline, bad budget, unknown key); callers may
    catch it as ``ShareSearchError`` (one-line CLI message) or as ``ValueError``."""


class Budget(NamedTuple):
    column: str  # one of BUDGET_COLUMNS
    limit: float


class DeltaMTerms(NamedTuple):
    """What Δm averages: the convention (``search.delta_m``) and, per task, each metric it
    counts with its direction."""

    convention: str
    higher_is_better: Mapping[str, Mapping[str, bool]]  # task -> metric -> higher is better


def delta_m_terms(tasks: Sequence, convention: str = DELTA_M_PRIMARY) -> DeltaMTerms:
    """The terms of ``convention`` for ``tasks`` (each with ``name``, ``metric`` and
    ``metric_directions``, the registry's direction of each of its metrics): the primary
    metric of each task, or all of its metrics."""
    if convention not in DELTA_M_CONVENTIONS:
        raise RankError(f"search.delta_m must be one of {', '.join(DELTA_M_CONVENTIONS)}, but got {convention!r}.")
    if convention == DELTA_M_PRIMARY:
        return DeltaMTerms(convention, {t.name: {t.metric: t.metric_directions[t.metric]} for t in tasks})
    return DeltaMTerms(convention, {t.name: dict(t.metric_directions) for t in tasks})


def delta_m_statement(convention: str = DELTA_M_PRIMARY) -> str:
    """The sentence that says how Δm was computed, for every place that shows a Δm."""
    return DELTA_M_STATEMENTS[convention]


def board_statement(board: pd.DataFrame) -> str:
    """The Δm sentence of the convention a leaderboard was ranked with (its ``attrs``)."""
    return delta_m_statement(board.attrs.get("delta_m_convention", DELTA_M_PRIMARY))


def delta_m(
    metrics: Mapping[str, Mapping[str, float]],
    baseline: Mapping[str, Mapping[str, float]],
    higher_is_better: Mapping[str, Mapping[str, bool]],
) -> float:
    """Δm in percent over the tasks and metrics of ``higher_is_better`` (task -> metric ->
    direction; ``DeltaMTerms.higher_is_better``): each metric's relative change against the
    baseline, signed by its direction, is averaged within its task, then across tasks. With
    one metric per task this is ``DELTA_M_CONVENTION``; with several, LibMTL's
    ``count_improvement`` (``DELTA_M_ALL_METRICS_CONVENTION``). ``metrics`` and ``baseline``
    are task -> metric -> value, as ``TrialRecord.val``.

    A missing or NaN model metric gives NaN (that trial has no Δm); a baseline value that
    is missing, NaN or not positive raises, because every trial's Δm divides by it.
    """
    if not higher_is_better or not all(higher_is_better.values()):
        raise RankError(f"Δm needs at least one metric for every task, but got {dict(higher_is_better)!r}.")
    for task, directions in higher_is_better.items():
        for metric in directions:
            base = metric_value(baseline, task, metric)
            if not (math.isfinite(base) and base > 0):
                raise RankError(
                    f"Δm divides by the single-task baseline, so it must be a positive number, "
                    f"but task {task!r} has baseline {base!r} for metric {metric!r}; rank by `pareto` or a task name instead."
                )
    return relative_change(metrics, baseline, higher_is_better)



def pareto_fronts(values: np.ndarray | pd.DataFrame, higher_is_better: Sequence[bool]) -> np.ndarray:
    """Front number of each row by non-dominated sorting (1 = the Pareto front).

    Rows are points, columns objectives. Identical points do not dominate each other, so
    they share a front. A row with any NaN cannot be compared: it gets front 0 and
    dominates nothing.
    """
    points = np.asarray(values, dtype=float)
    if points.ndim != 2 or points.shape[1] != len(higher_is_better):
        raise ValueError(
            f"`values` must be 2-D with one column per entry of `higher_is_better`, but got "
            f"shape {points.shape} and {len(higher_is_better)} directions."
        )
    fronts = np.zeros(len(points), dtype=int)
    valid = ~np.isnan(points).any(axis=1)
    cost = np.where(higher_is_better, -points[valid], points[valid])  # lower is better everywhere
    # dominates[i, j]: i is no worse than j in every objective and better in one.
    dominates = (cost[:, None] <= cost[None]).all(axis=2) & (cost[:, None] < cost[None]).any(axis=2)
    dominated_by = dominates.sum(axis=0)
    remaining = np.ones(len(cost), dtype=bool)
    valid_fronts = np.zeros(len(cost), dtype=int)
    front = 0
    while remaining.any():
        front += 1
        current = remaining & (dominated_by == 0)
        valid_fronts[current] = front
        remaining &= ~current
        dominated_by -= dominates[current].sum(axis=0)
    fronts[valid] = valid_fronts
    return fronts


def select_baseline(trials: pd.DataFrame) -> pd.Series:
    """The row of the trial that Δm compares against, by ``record.baseline_of``'s rule
    (the COMPLETE baseline trial with the lowest number)."""
    rows = trials.set_index("trial", drop=False)
    chosen = baseline_of(
        TrialRecord(number=int(n), state=str(s), role=ROLE_SINGLE_TASK if b else ROLE_SEARCHED)
        for n, s, b in zip(rows["trial"], rows["state"], rows["baseline"].eq(True))
    )
    if chosen is None:
        others = trials.loc[trials["baseline"].eq(True), "state"].value_counts()
        found = ", ".join(f"{n} {state}" for state, n in others.items()) or "none"
        raise RankError(
            "Δm needs the single-task networks as a baseline, but the study has no COMPLETE "
            f"baseline trial (baseline trials: {found}); run with `search.baselines: true`, "
            "or rank by `pareto` or a task name."
        )
    return rows.loc[chosen.number]


def parse_budget(text: str) -> Budget:
    """``"params<=100000"`` or ``"macs<=2e6"`` -> ``Budget(column, limit)``."""
    match = re.fullmatch(r"\s*(\w+)\s*<=\s*(\S+)\s*", text)
    limit = _number(match.group(2)) if match else None
    if match is None or match.group(1) not in BUDGET_COLUMNS or limit is None or limit < 0:
        raise RankError(
            "a budget must read `params<=N` or `macs<=N` with N a non-negative number "
            f"(e.g. `params<=100000`, `macs<=2e6`), but got {text!r}."
        )
    return Budget(match.group(1), limit)


def _number(text: str) -> float | None:
    try:
        value = float(text)
    except ValueError:
        return None
    return value if math.isfinite(value) else None


def metric_column(task: str, metric: str) -> str:
    """The trials table's column of one validation metric (``val.<task>`` holds the primary one too)."""
    return f"val.{task}.{metric}"


def leaderboard(
    trials: pd.DataFrame,
    higher_is_better: Mapping[str, bool],
    rank_by: str = "delta_m",
    budget: str | None = None,
    delta_m_over: DeltaMTerms | None = None,
    seeds: pd.DataFrame | None = None,
    first: Sequence[int] = (),
) -> pd.DataFrame:
    """Trials with ``rank``, ``delta_m`` and ``pareto_front`` added, best first.

    Ranked: COMPLETE trials with every ``val.<task>`` present and within ``budget``;
    ``rank`` is 1..n, unique (ties go to the earlier trial, so ``rank-k`` names one
    trial), and ``pareto_front`` is computed among them. Every other row (FAIL, PRUNED,
    RUNNING, over budget) follows by trial number with both left empty: never ranked.

    ``rank_by``: ``delta_m`` (descending), ``pareto`` (front, then Δm), or a task name
    (its ``val.<task>`` in its direction). The baseline is ranked like any trial (Δm 0).
    Without a usable baseline only ``delta_m`` ranking fails; otherwise Δm is left NaN.

    ``delta_m_over``: the metrics Δm averages (``delta_m_terms``), read from the
    ``val.<task>.<metric>`` columns; by default each task's primary metric in ``val.<task>``.
    The board's ``attrs`` say how it was ranked: ``rank_by``, ``budget``, ``delta_m_convention``.

    ``seeds``: one row per seed of each trial (``trial``, ``repeat`` and the same metric
    columns; ``study.seeds_frame``). With it, a trial's Δm is the mean of its seeds' Δm, each
    against the baseline's seed of the same repeat (paired), and the board gains ``n_seeds``,
    a standard error ``<column>.se`` beside each metric and ``delta_m``, and ``p_vs_best`` /
    ``tied_with_best`` (``uncertainty.add_uncertainty``). The metric columns stay the means
    the trials table holds.

    ``first``: trial numbers ranked before the others, in that order, when ranked at all (the
    confirmation race's leader and the candidates it kept, ``racing.race_order``).
    """
    tasks = list(higher_is_better)
    if rank_by not in (*RANK_KEYS, *tasks):
        raise RankError(f"`rank_by` must be one of {', '.join((*RANK_KEYS, *tasks))}, but got {rank_by!r}.")
    val = [f"val.{task}" for task in tasks]
    cap = parse_budget(budget) if budget is not None else None
    terms = delta_m_over or DeltaMTerms(DELTA_M_PRIMARY, {task: {_PRIMARY: higher} for task, higher in higher_is_better.items()})
    columns = {task: {metric: _column(task, metric) for metric in metrics} for task, metrics in terms.higher_is_better.items()}
    counted = [column for of_task in columns.values() for column in of_task.values()]
    _require_columns(trials, ["trial", "state", "baseline", *dict.fromkeys([*val, *counted]), *([cap.column] if cap else [])])

    board = trials.reset_index(drop=True)
    ranked = board["state"].eq("COMPLETE") & board[val].notna().all(axis=1)
    if cap is not None:
        ranked &= board[cap.column] <= cap.limit  # a NaN cost cannot prove it fits
    board["delta_m"] = _delta_m_column(board, terms.higher_is_better, columns, required=rank_by == "delta_m")
    if seeds is not None:
        seeds = _with_seed_delta_m(board, seeds, terms.higher_is_better, columns)
        board["delta_m"] = [mean_and_se(list(seeds.loc[seeds["trial"] == n, "delta_m"])).mean for n in board["trial"]]
    board["pareto_front"] = pd.Series(pd.NA, index=board.index, dtype="Int64")
    board.loc[ranked, "pareto_front"] = pareto_fronts(board.loc[ranked, val], list(higher_is_better.values()))

    if rank_by == "delta_m":
        keys, ascending = ["delta_m"], [False]
    elif rank_by == "pareto":
        keys, ascending = ["pareto_front", "delta_m"], [True, False]
    else:
        keys, ascending = [f"val.{rank_by}"], [not higher_is_better[rank_by]]
    order = board[ranked].sort_values([*keys, "trial"], ascending=[*ascending, True]).index
    if first:
        place = {int(n): i for i, n in enumerate(first)}
        order = pd.Index(sorted(order, key=lambda i: place.get(int(board.at[i, "trial"]), len(place))))  # stable: the rest keep their order
    rest = board[~ranked].sort_values("trial").index
    board.insert(0, "rank", pd.Series(pd.NA, index=board.index, dtype="Int64"))
    board.loc[order, "rank"] = np.arange(1, len(order) + 1)
    board = board.loc[order.append(rest)].reset_index(drop=True)
    # how it was ranked, for the exports' metrics.json and every statement of the Δm convention
    board.attrs = {**board.attrs, "rank_by": rank_by, "budget": budget, "delta_m_convention": terms.convention}
    if seeds is not None:
        key = {"delta_m": "delta_m", "pareto": None}.get(rank_by, f"val.{rank_by}")
        board = add_uncertainty(board, seeds, [*(c for c in seeds.columns if c.startswith("val.")), "delta_m"], key)
        board.attrs.update(tie_key=key, tie_key_label="Δm" if key == "delta_m" else key)
    return board


def _with_seed_delta_m(board: pd.DataFrame, seeds: pd.DataFrame, higher_is_better, columns) -> pd.DataFrame:
    """The seeds table with each seed's paired Δm (NaN throughout without a baseline)."""
    try:
        baseline = int(select_baseline(board)["trial"])
    except RankError:
        baseline = None
    seeds = seeds.reset_index(drop=True)
    return seeds.assign(delta_m=per_seed_delta_m(seeds, baseline, columns, higher_is_better, delta_m))


_PRIMARY = "primary metric"  # the metric of ``val.<task>``, for a table that names no metrics (no ``delta_m_over``)


def _column(task: str, metric: str) -> str:
    return f"val.{task}" if metric == _PRIMARY else metric_column(task, metric)


def _delta_m_column(
    board: pd.DataFrame, higher_is_better: Mapping[str, Mapping[str, bool]], columns: Mapping[str, Mapping[str, str]], required: bool,
) -> pd.Series:
    """Δm of every row that has metrics; NaN throughout when no baseline and not ``required``."""

    try:
        reference = row_metrics(select_baseline(board), columns)
        values = [delta_m(row_metrics(row, columns), reference, higher_is_better) for row in board.to_dict("records")]
    except RankError:
        if required:
            raise
        values = [math.nan] * len(board)
    return pd.Series(values, index=board.index, dtype=float)


def _require_columns(trials: pd.DataFrame, columns: Sequence[str]) -> None:
    missing = [c for c in columns if c not in trials.columns]
    if missing:
        raise RankError(
            f"the trials table needs columns {', '.join(missing)}, but has only {', '.join(map(str, trials.columns))}."
        )
