"""Rank trials: Δm against the single-task baseline, Pareto fronts, the leaderboard.

Pure functions on a pandas table with one row per trial (``trial``, ``state``,
``baseline``, ``params``, ``macs``, ``val.<task>``, optionally ``test.<task>``), so the
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
from ..spec.model import RANK_KEYS
from ..train.selection import relative_change
from .record import ROLE_SEARCHED, ROLE_SINGLE_TASK, TrialRecord, baseline_of

DELTA_M_CONVENTION = (
    "Δm = 100/T · Σ_t (−1)^l_t (M_m,t − M_b,t) / M_b,t: the mean relative change (in %, higher "
    "is better) of each task's validation metric against the single-task networks b, with "
    "l_t = 1 for lower-is-better metrics (Maninis et al. 2019; Vandenhende et al. 2021)."
)
BUDGET_COLUMNS = ("params", "macs")


class RankError(ShareSearchError, ValueError):
    """Trials cannot be ranked as asked (no baseline, bad budget, unknown key); callers may
    catch it as ``ShareSearchError`` (one-line CLI message) or as ``ValueError``."""


class Budget(NamedTuple):
    column: str  # one of BUDGET_COLUMNS
    limit: float


def delta_m(
    metrics: Mapping[str, float],
    baseline: Mapping[str, float],
    higher_is_better: Mapping[str, bool],
) -> float:
    """Δm in percent over the tasks of ``higher_is_better`` (see ``DELTA_M_CONVENTION``).

    A missing or NaN model metric gives NaN (that trial has no Δm); a baseline value that
    is missing, NaN or not positive raises, because every trial's Δm divides by it.
    """
    if not higher_is_better:
        raise RankError("Δm needs at least one task, but got an empty `higher_is_better`.")
    for task in higher_is_better:
        base = float(baseline.get(task, math.nan))
        if not (math.isfinite(base) and base > 0):
            raise RankError(
                f"Δm divides by the single-task baseline, so it must be a positive number, "
                f"but task {task!r} has baseline {base!r}; rank by `pareto` or a task name instead."
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


def leaderboard(
    trials: pd.DataFrame,
    higher_is_better: Mapping[str, bool],
    rank_by: str = "delta_m",
    budget: str | None = None,
) -> pd.DataFrame:
    """Trials with ``rank``, ``delta_m`` and ``pareto_front`` added, best first.

    Ranked: COMPLETE trials with every ``val.<task>`` present and within ``budget``;
    ``rank`` is 1..n, unique (ties go to the earlier trial, so ``rank-k`` names one
    trial), and ``pareto_front`` is computed among them. Every other row (FAIL, PRUNED,
    RUNNING, over budget) follows by trial number with both left empty: never ranked.

    ``rank_by``: ``delta_m`` (descending), ``pareto`` (front, then Δm), or a task name
    (its ``val.<task>`` in its direction). The baseline is ranked like any trial (Δm 0).
    Without a usable baseline only ``delta_m`` ranking fails; otherwise Δm is left NaN.
    """
    tasks = list(higher_is_better)
    if rank_by not in (*RANK_KEYS, *tasks):
        raise RankError(f"`rank_by` must be one of {', '.join((*RANK_KEYS, *tasks))}, but got {rank_by!r}.")
    val = [f"val.{task}" for task in tasks]
    cap = parse_budget(budget) if budget is not None else None
    _require_columns(trials, ["trial", "state", "baseline", *val, *([cap.column] if cap else [])])

    board = trials.reset_index(drop=True)
    ranked = board["state"].eq("COMPLETE") & board[val].notna().all(axis=1)
    if cap is not None:
        ranked &= board[cap.column] <= cap.limit  # a NaN cost cannot prove it fits
    board["delta_m"] = _delta_m_column(board, higher_is_better, required=rank_by == "delta_m")
    board["pareto_front"] = pd.Series(pd.NA, index=board.index, dtype="Int64")
    board.loc[ranked, "pareto_front"] = pareto_fronts(board.loc[ranked, val], list(higher_is_better.values()))

    if rank_by == "delta_m":
        keys, ascending = ["delta_m"], [False]
    elif rank_by == "pareto":
        keys, ascending = ["pareto_front", "delta_m"], [True, False]
    else:
        keys, ascending = [f"val.{rank_by}"], [not higher_is_better[rank_by]]
    order = board[ranked].sort_values([*keys, "trial"], ascending=[*ascending, True]).index
    rest = board[~ranked].sort_values("trial").index
    board.insert(0, "rank", pd.Series(pd.NA, index=board.index, dtype="Int64"))
    board.loc[order, "rank"] = np.arange(1, len(order) + 1)
    board = board.loc[order.append(rest)].reset_index(drop=True)
    board.attrs = {**board.attrs, "rank_by": rank_by, "budget": budget}  # how it was ranked, for the exports' metrics.json
    return board


def _delta_m_column(board: pd.DataFrame, higher_is_better: Mapping[str, bool], required: bool) -> pd.Series:
    """Δm of every row that has metrics; NaN throughout when no baseline and not ``required``."""
    try:
        base = select_baseline(board)
        reference = {task: base[f"val.{task}"] for task in higher_is_better}
        rows = board[[f"val.{task}" for task in higher_is_better]].set_axis(list(higher_is_better), axis=1)
        values = [delta_m(row, reference, higher_is_better) for row in rows.to_dict("records")]
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
