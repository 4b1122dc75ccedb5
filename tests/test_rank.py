"""Ranking on small hand-made tables; every expected number is worked out by hand here."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from share_search.errors import ShareSearchError
from share_search.runs.rank import (
    DELTA_M_CONVENTION,
    Budget,
    RankError,
    delta_m,
    leaderboard,
    pareto_fronts,
    parse_budget,
    select_baseline,
)

HIB = {"cls": True, "reg": False}  # accuracy (up), MAE (down)
BASE = {"cls": 0.9, "reg": 2.0}


def _primary_delta_m(metrics, baseline, higher_is_better):
    """``delta_m`` with one metric per task (the primary convention), values given per task."""
    def one(values):
        return {task: {"m": value} for task, value in values.items()}

    return delta_m(one(metrics), one(baseline), one(higher_is_better))


# ----------------------------------------------------------------------------- delta_m
@pytest.mark.parametrize(
    "metrics, expected",
    [
        ({"cls": 0.95, "reg": 1.5}, 100 / 2 * (0.05 / 0.9 + 0.5 / 2.0)),  # 15.2777...
        ({"cls": 0.9, "reg": 2.0}, 0.0),  # the baseline itself
        ({"cls": 0.99, "reg": 2.2}, 100 / 2 * (0.09 / 0.9 - 0.2 / 2.0)),  # a gain cancels a loss: 0
        ({"cls": 0.45, "reg": 4.0}, 100 / 2 * (-0.5 - 1.0)),  # half the accuracy, double the error: -75
    ],
)
def test_delta_m_by_hand(metrics, expected):
    assert _primary_delta_m(metrics, BASE, HIB) == pytest.approx(expected)


def test_delta_m_known_value_and_sign_of_lower_is_better():
    assert _primary_delta_m({"cls": 0.95, "reg": 1.5}, BASE, HIB) == pytest.approx(15.277777777)
    assert _primary_delta_m({"reg": 1.0}, {"reg": 2.0}, {"reg": False}) == pytest.approx(50.0)  # error halved: +50 %


@pytest.mark.parametrize("metrics", [{"cls": float("nan"), "reg": 1.5}, {"reg": 1.5}])
def test_delta_m_without_a_model_metric_is_nan(metrics):
    assert math.isnan(_primary_delta_m(metrics, BASE, HIB))


@pytest.mark.parametrize(
    "baseline, shown",
    [
        ({"cls": 0.9}, "'reg' has baseline nan"),
        ({"cls": 0.9, "reg": float("nan")}, "'reg' has baseline nan"),
        ({"cls": 0.0, "reg": 2.0}, "'cls' has baseline 0.0"),
        ({"cls": 0.9, "reg": -1.0}, "'reg' has baseline -1.0"),
    ],
)
def test_delta_m_rejects_an_unusable_baseline_naming_the_task(baseline, shown):
    with pytest.raises(RankError, match=shown) as info:
        _primary_delta_m({"cls": 0.95, "reg": 1.5}, baseline, HIB)
    assert isinstance(info.value, ValueError) and isinstance(info.value, ShareSearchError)
    assert "positive" in str(info.value)


def test_convention_sentence_names_formula_and_direction():
    assert "Δm = 100/T" in DELTA_M_CONVENTION and "lower-is-better" in DELTA_M_CONVENTION


# ----------------------------------------------------------------------------- pareto_fronts
#   y
#   5  a . . . f        minimise both: a, b (= d, a duplicate), c on front 1;
#   4  . . e h .        e is dominated by b; h by e; f by h.
#   3  . b . . .        g has NaN: front 0, and it must not knock c (4, 1) off front 1.
#   1  . . . c .
#      1 2 3 4 5  x
POINTS = np.array(
    [
        [1, 5],  # a
        [2, 3],  # b
        [4, 1],  # c
        [2, 3],  # d == b
        [3, 4],  # e
        [5, 5],  # f
        [np.nan, 1],  # g
        [4, 4],  # h
    ]
)
FRONTS = [1, 1, 1, 1, 2, 4, 0, 3]


@pytest.mark.parametrize(
    "values, higher_is_better",
    [
        (POINTS, [False, False]),
        (-POINTS, [True, True]),
        (POINTS * [-1, 1], [True, False]),
        (pd.DataFrame(POINTS, columns=["x", "y"]), [False, False]),
    ],
    ids=["min-min", "max-max", "max-min", "dataframe"],
)
def test_pareto_fronts_hand_drawn(values, higher_is_better):
    assert pareto_fronts(values, higher_is_better).tolist() == FRONTS


@pytest.mark.parametrize(
    "values, expected",
    [
        (np.ones((3, 2)), [1, 1, 1]),  # identical points share the front
        (np.array([[np.nan, 1.0], [np.nan, 2.0]]), [0, 0]),
        (np.empty((0, 2)), []),
        (np.array([[3.0], [1.0], [2.0], [1.0]]), [3, 1, 2, 1]),  # one objective: plain ranking with ties
    ],
)
def test_pareto_fronts_edge_cases(values, expected):
    assert pareto_fronts(values, [False] * values.shape[1]).tolist() == expected


def test_pareto_fronts_rejects_mismatched_directions():
    with pytest.raises(ValueError, match=r"shape \(8, 2\) and 3 directions"):
        pareto_fronts(POINTS, [True, True, True])


# ----------------------------------------------------------------------------- the trial table
def trials_table() -> pd.DataFrame:
    """Trial 0 is the baseline. Δm by hand (baseline cls 0.9, reg 2.0):
    1: 50(0.05/0.9 + 0.25) = 15.28   2: 50(0.09/0.9 - 0.2) = -5
    3: 50(-0.05/0.9 + 0.5) = 22.22   5 (PRUNED) would beat them all but is never ranked.
    Pareto among COMPLETE {0, 1, 2, 3}: 1 dominates 0; 1, 2, 3 are mutually non-dominated.
    test.cls runs opposite to val.cls, so ranking on it would reverse the cls order."""
    rows = [
        # trial state       baseline val.cls val.reg params macs  test.cls
        (0, "COMPLETE", True, 0.90, 2.0, 300, 4e6, 0.70),
        (1, "COMPLETE", False, 0.95, 1.5, 100, 1e6, 0.60),
        (2, "COMPLETE", False, 0.99, 2.4, 150, 2e6, 0.50),
        (3, "COMPLETE", False, 0.85, 1.0, 250, 3e6, 0.90),
        (4, "FAIL", False, np.nan, np.nan, 120, 1e6, np.nan),
        (5, "PRUNED", False, 0.97, 0.5, 100, 1e6, np.nan),
        (6, "RUNNING", False, np.nan, np.nan, 100, 1e6, np.nan),
        (7, "COMPLETE", False, 0.93, np.nan, 100, 1e6, np.nan),  # a metric missing: cannot be compared
    ]
    df = pd.DataFrame(rows, columns=["trial", "state", "baseline", "val.cls", "val.reg", "params", "macs", "test.cls"])
    df["family"], df["arch"], df["time_s"] = "tree", "tree: …", 1.0
    return df.sample(frac=1.0, random_state=0)  # input order must not matter


UNRANKED = [4, 5, 6, 7]


@pytest.mark.parametrize(
    "rank_by, order",
    [
        ("delta_m", [3, 1, 0, 2]),  # 22.2, 15.3, 0, -5
        ("pareto", [3, 1, 2, 0]),  # front 1 {1, 2, 3} by Δm, then front 2 {0}
        ("cls", [2, 1, 0, 3]),  # accuracy descending
        ("reg", [3, 1, 0, 2]),  # MAE ascending
    ],
)
def test_leaderboard_each_rank_key(rank_by, order):
    board = leaderboard(trials_table(), HIB, rank_by=rank_by)
    assert board["trial"].tolist() == order + UNRANKED
    assert board["rank"].tolist()[: len(order)] == [1, 2, 3, 4]


@pytest.mark.parametrize("rank_by", ["delta_m", "pareto", "cls", "reg"])
def test_leaderboard_ties_go_to_the_earlier_trial(rank_by):
    """Trials 5 and 2 are identical (listed later trial first): same Δm, same front, ranks 1 and 2."""
    table = pd.DataFrame(
        [(5, "COMPLETE", False, 0.95, 1.5), (2, "COMPLETE", False, 0.95, 1.5), (0, "COMPLETE", True, 0.9, 2.0)],
        columns=["trial", "state", "baseline", "val.cls", "val.reg"],
    )
    board = leaderboard(table, HIB, rank_by=rank_by)
    assert board["trial"].tolist() == [2, 5, 0]
    assert board["rank"].tolist() == [1, 2, 3]
    assert board["delta_m"].iloc[0] == board["delta_m"].iloc[1]
    assert board["pareto_front"].tolist() == [1, 1, 2]


def test_leaderboard_values_and_unranked_rows():
    board = leaderboard(trials_table(), HIB).set_index("trial")
    expected_dm = {0: 0.0, 1: 50 * (0.05 / 0.9 + 0.25), 2: 50 * (0.09 / 0.9 - 0.2), 3: 50 * (-0.05 / 0.9 + 0.5)}
    assert board.loc[list(expected_dm), "delta_m"].tolist() == pytest.approx(list(expected_dm.values()))
    assert board.loc[[0, 1, 2, 3], "pareto_front"].tolist() == [2, 1, 1, 1]
    assert board.loc[UNRANKED, "rank"].isna().all()  # failed, pruned, running, incomplete: never ranked
    assert board.loc[UNRANKED, "pareto_front"].isna().all()


def test_leaderboard_ranks_on_validation_and_carries_test_untouched():
    table = trials_table()
    board = leaderboard(table, HIB, rank_by="cls")
    assert board["trial"].tolist()[:4] == [2, 1, 0, 3]  # test.cls would give 3, 0, 1, 2
    carried = board.set_index("trial")["test.cls"]
    pd.testing.assert_series_equal(carried.sort_index(), table.set_index("trial")["test.cls"].sort_index())
    assert list(table.columns) == [c for c in board.columns if c not in ("rank", "delta_m", "pareto_front")]


def test_leaderboard_leaves_its_input_alone():
    table = trials_table()
    before = table.copy()
    leaderboard(table, HIB, rank_by="pareto", budget="params<=200")
    pd.testing.assert_frame_equal(table, before)


@pytest.mark.parametrize(
    "budget, order",
    [
        ("params<=200", [1, 2]),  # the baseline (300) is over budget, yet still the Δm reference
        ("params<=150", [1, 2]),  # the limit itself fits
        ("params<=99", []),
        ("macs<=3e6", [3, 1, 2]),
        (None, [3, 1, 0, 2]),
    ],
)
def test_leaderboard_budget(budget, order):
    board = leaderboard(trials_table(), HIB, budget=budget)
    assert board["trial"].tolist()[: len(order)] == order
    assert board["rank"].notna().sum() == len(order)
    assert board.set_index("trial").loc[1, "delta_m"] == pytest.approx(15.277777777)


def test_leaderboard_pareto_front_is_among_the_ranked_only():
    board = leaderboard(trials_table(), HIB, rank_by="pareto", budget="params<=200").set_index("trial")
    assert board.loc[[1, 2], "pareto_front"].tolist() == [1, 1]
    assert board.loc[[0, 3], "pareto_front"].isna().all()


def test_leaderboard_unknown_rank_key_lists_valid_keys():
    with pytest.raises(RankError, match=r"one of delta_m, pareto, cls, reg, but got 'acc'"):
        leaderboard(trials_table(), HIB, rank_by="acc")


def test_leaderboard_names_missing_columns():
    with pytest.raises(RankError, match=r"needs columns val\.depth"):
        leaderboard(trials_table(), {**HIB, "depth": False})


# ----------------------------------------------------------------------------- the baseline
def test_no_baseline_fails_delta_m_ranking_with_the_way_out():
    table = trials_table()
    table.loc[table["trial"] == 0, "state"] = "FAIL"
    with pytest.raises(RankError, match=r"no COMPLETE baseline trial \(baseline trials: 1 FAIL\)") as info:
        leaderboard(table, HIB)
    assert "search.baselines: true" in str(info.value)


def test_no_baseline_still_ranks_by_task_without_delta_m():
    table = trials_table()
    table["baseline"] = False
    board = leaderboard(table, HIB, rank_by="cls")
    assert board["trial"].tolist()[:4] == [2, 1, 0, 3]
    assert board["delta_m"].isna().all()


def test_select_baseline_single():
    assert select_baseline(trials_table())["trial"] == 0


@pytest.mark.parametrize(
    "baselines, chosen",
    [
        # the strongest (12) and the weakest (10) alike: the lowest number is the baseline
        ([(12, 0.95, 2.5), (10, 0.90, 2.0), (11, 0.92, 1.9)], 10),
        ([(21, 0.95, 2.0), (20, 0.90, 1.9)], 20),
    ],
)
def test_select_baseline_picks_the_lowest_numbered_complete_one(baselines, chosen):
    table = pd.DataFrame(
        [(t, "COMPLETE", True, c, r) for t, c, r in baselines] + [(5, "FAIL", True, 1.0, 0.1)],
        columns=["trial", "state", "baseline", "val.cls", "val.reg"],
    )
    assert select_baseline(table)["trial"] == chosen


# ----------------------------------------------------------------------------- budgets
@pytest.mark.parametrize(
    "text, expected",
    [
        ("params<=100000", Budget("params", 100000.0)),
        ("macs<=2e6", Budget("macs", 2e6)),
        (" params <= 1_000 ", Budget("params", 1000.0)),
        ("macs<=0", Budget("macs", 0.0)),
    ],
)
def test_parse_budget(text, expected):
    assert parse_budget(text) == expected


@pytest.mark.parametrize(
    "text",
    ["params<100", "flops<=5", "params<=abc", "params<=-1", "params<=nan", "params<=inf", "", "params<=1 2"],
)
def test_parse_budget_rejects_with_the_accepted_forms(text):
    with pytest.raises(RankError, match=r"`params<=N` or `macs<=N`") as info:
        parse_budget(text)
    assert f"but got {text!r}" in str(info.value)


def test_leaderboard_bad_budget_fails_before_any_work():
    with pytest.raises(RankError, match="'params=5'"):
        leaderboard(trials_table(), HIB, budget="params=5")
