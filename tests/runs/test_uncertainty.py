"""The leaderboard's uncertainty over seeds, against a direct computation on hand-made
records: mean ± standard error per metric and for the paired Δm, ``n_seeds``, and
``tied_with_best`` from a two-sided paired t-test (scipy's ``ttest_rel``) against rank 1."""

from __future__ import annotations

import math
import statistics

import pandas as pd
import pytest
from scipy.stats import ttest_rel

from share_search.runs.record import ROLE_SINGLE_TASK, SeedResult, TrialRecord
from share_search.runs.report import TaskInfo
from share_search.runs.study import leaderboard_of
from share_search.runs.uncertainty import TIE_ALPHA, mean_and_se, paired_p_value, separation_line

TASKS = [TaskInfo("a", "accuracy", True), TaskInfo("b", "mae", False)]
BASE = [(0.50, 2.0), (0.60, 2.5), (0.40, 1.5)]  # the single-task networks' (a, b) per seed: seeds differ a lot


def _record(number: int, per_seed: list[tuple[float, float]], role: str = "searched") -> TrialRecord:
    seeds = [SeedResult(r, 10 + r, "COMPLETE", {"a": {"accuracy": a}, "b": {"mae": b}}) for r, (a, b) in enumerate(per_seed)]
    mean = {"a": {"accuracy": statistics.fmean(a for a, _ in per_seed)}, "b": {"mae": statistics.fmean(b for _, b in per_seed)}}
    return TrialRecord(number, "COMPLETE", role, val=mean, seeds=seeds if len(per_seed) > 1 else None)


def _scaled(gain_a: list[float], gain_b: list[float]) -> list[tuple[float, float]]:
    """Each seed's baseline, a up and b down by the given fractions: Δm per seed is 50·(ga + gb)."""
    return [(a * (1 + ga), b * (1 - gb)) for (a, b), ga, gb in zip(BASE, gain_a, gain_b)]


BEST = _scaled([0.20, 0.25, 0.18], [0.10, 0.12, 0.08])
CLOSE = _scaled([0.22, 0.20, 0.19], [0.07, 0.12, 0.09])  # per-seed differences to BEST change sign: tied
WORSE = _scaled([0.01, 0.03, 0.00], [0.02, 0.01, 0.02])  # below BEST on every seed by far: separated


def _paired_delta_m(per_seed):
    return [100 / 2 * ((a - ab) / ab - (b - bb) / bb) for (a, b), (ab, bb) in zip(per_seed, BASE)]


def _board(rank_by="delta_m"):
    records = [_record(0, BASE, ROLE_SINGLE_TASK), _record(1, WORSE), _record(2, BEST), _record(3, CLOSE)]
    return leaderboard_of(records, TASKS, rank_by=rank_by).set_index("trial")


def test_mean_and_standard_error_of_every_metric_and_of_the_paired_delta_m():
    board = _board()
    for number, per_seed in {1: WORSE, 2: BEST, 3: CLOSE}.items():
        dm = _paired_delta_m(per_seed)
        assert board.loc[number, "n_seeds"] == 3
        assert board.loc[number, "delta_m"] == pytest.approx(statistics.fmean(dm), abs=1e-12)
        assert board.loc[number, "delta_m.se"] == pytest.approx(statistics.stdev(dm) / math.sqrt(3), abs=1e-12)
        for i, task in enumerate(("a", "b")):
            values = [seed[i] for seed in per_seed]
            assert board.loc[number, f"val.{task}"] == pytest.approx(statistics.fmean(values), abs=1e-12)
            assert board.loc[number, f"val.{task}.se"] == pytest.approx(statistics.stdev(values) / math.sqrt(3), abs=1e-12)
    assert board.loc[0, "delta_m"] == 0.0 and board.loc[0, "delta_m.se"] == 0.0
    # paired is not the Δm of the means: the baseline's seeds differ, so the two disagree here
    unpaired = 100 / 2 * ((board.loc[3, "val.a"] - board.loc[0, "val.a"]) / board.loc[0, "val.a"] - (board.loc[3, "val.b"] - board.loc[0, "val.b"]) / board.loc[0, "val.b"])
    assert abs(unpaired - board.loc[3, "delta_m"]) > 0.1


def test_tied_with_best_is_a_paired_t_test_against_rank_one():
    board = _board()
    assert list(board.sort_values("rank").index[:4]) == [2, 3, 1, 0]
    best = _paired_delta_m(BEST)
    for number, per_seed in {3: CLOSE, 1: WORSE}.items():
        expected = ttest_rel(best, _paired_delta_m(per_seed)).pvalue
        assert board.loc[number, "p_vs_best"] == pytest.approx(expected, rel=1e-9)
    assert board.loc[3, "p_vs_best"] >= TIE_ALPHA and board.loc[3, "tied_with_best"] == True  # noqa: E712 (pandas' boolean)
    assert board.loc[1, "p_vs_best"] < TIE_ALPHA and board.loc[1, "tied_with_best"] == False  # noqa: E712
    assert board.loc[2, "tied_with_best"] == True  # noqa: E712 (rank 1 is in its own group)
    line = separation_line(board.reset_index())
    assert "trial 2" in line and "trial 3" in line and "TIED" in line and f"p = {board.loc[3, 'p_vs_best']:.3g}" in line


def test_a_clearly_worse_runner_up_is_separated():
    records = [_record(0, BASE, ROLE_SINGLE_TASK), _record(1, WORSE), _record(2, BEST)]
    board = leaderboard_of(records, TASKS)
    line = separation_line(board)
    assert "SEPARATED" in line and "trial 2" in line and "trial 1" in line


def test_rank_by_a_task_ranks_and_tests_on_that_task():
    board = _board(rank_by="a")
    order = list(board.sort_values("rank").index[:3])
    assert order[0] == 2 and board.loc[2, "val.a"] > board.loc[3, "val.a"]
    best_a = [a for a, _ in BEST]
    for number, per_seed in {3: CLOSE, 1: WORSE}.items():
        assert board.loc[number, "p_vs_best"] == pytest.approx(ttest_rel(best_a, [a for a, _ in per_seed]).pvalue, rel=1e-9)
    assert board.attrs["tie_key"] == "val.a"


def test_with_one_seed_nothing_is_claimed():
    records = [_record(0, BASE[:1], ROLE_SINGLE_TASK), _record(1, WORSE[:1]), _record(2, BEST[:1])]
    board = leaderboard_of(records, TASKS)
    assert list(board["n_seeds"]) == [1, 1, 1]
    assert board["delta_m.se"].isna().all() and board["p_vs_best"].isna().all()
    ranked = board.set_index("trial")
    assert ranked.loc[2, "tied_with_best"] == True and pd.isna(ranked.loc[1, "tied_with_best"])  # noqa: E712
    line = separation_line(board)
    assert "cannot be told apart" in line and "1 seed per architecture" in line
    assert "TIED" not in line and "SEPARATED" not in line


def test_a_pareto_ranking_states_no_tie():
    board = _board(rank_by="pareto")
    assert board.loc[board["rank"] != 1, "tied_with_best"].isna().all()
    assert "Pareto" in separation_line(board.reset_index())


def test_the_statistics_on_their_own():
    assert mean_and_se([3.0]) == (3.0, pytest.approx(math.nan, nan_ok=True))
    assert mean_and_se([1.0, 2.0, 6.0]).se == pytest.approx(statistics.stdev([1, 2, 6]) / math.sqrt(3))
    assert paired_p_value({0: 1.0, 1: 2.0}, {0: 1.0, 1: 2.0}) == 1.0  # identical seeds: nothing to separate
    assert paired_p_value({0: 2.0, 1: 3.0}, {0: 1.0, 1: 2.0}) == 0.0  # the same gap on every seed
    assert math.isnan(paired_p_value({0: 2.0}, {0: 1.0}))  # one shared seed: no spread
    assert math.isnan(paired_p_value({0: 2.0, 1: 1.0}, {0: 1.0, 2: 2.0}))  # seeds are paired by repeat only
