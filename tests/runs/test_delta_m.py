"""Δm over several metrics per task (``search.delta_m``): the formula by hand for both
conventions, the leaderboard, the statements of the convention, and a real search.

``all_metrics`` is LibMTL's convention (``LibMTL/utils.py``, ``count_improvement``): each
metric's relative change, signed by its direction, averaged within its task first, then
across tasks. ``primary`` (the default) is that formula with each task's primary metric only.
"""

from __future__ import annotations

import json
import math
import random

import optuna
import pandas as pd
import pytest
from optuna.trial import TrialState

from share_search.cli import main
from share_search.errors import RunError, SpecError
from share_search.runs.dashboard import note_markdown
from share_search.runs.rank import (
    DELTA_M_ALL_METRICS_CONVENTION,
    DELTA_M_CONVENTION,
    RankError,
    delta_m,
    delta_m_terms,
    leaderboard,
)
from share_search.runs.report import TaskInfo
from share_search.runs.study import delta_m_convention_of
from share_search.spec.model import parse_spec
from share_search.spec.registry import METRICS
from share_search.train.tasks import Task
from tests.runs import one_line_error, small_spec, study_of, write_spec

# accuracy and f1 up; mae and rmse down, r2 up: the directions come from the metric registry
DIGIT = Task(name="digit", label="digit", type="multiclass", n_outputs=10, metric="accuracy", extra_metrics=("f1",))
AGE = Task(name="age", label="age", type="regression", n_outputs=1, metric="mae", extra_metrics=("rmse", "r2"))
TASKS = (DIGIT, AGE)
BASE = {"digit": {"accuracy": 0.80, "f1": 0.60}, "age": {"mae": 4.0, "rmse": 5.0, "r2": 0.50}}
MODEL = {"digit": {"accuracy": 0.88, "f1": 0.66}, "age": {"mae": 3.0, "rmse": 6.0, "r2": 0.40}}


def _relative(task: str, metric: str, model=MODEL, base=BASE) -> float:
    """One metric's relative change in %, positive when it got better."""
    change = 100 * (model[task][metric] - base[task][metric]) / base[task][metric]
    return change if METRICS[metric].higher_is_better else -change


# ----------------------------------------------------------------------------- the formula
def test_the_terms_come_from_the_registry_and_the_tasks_metrics():
    assert delta_m_terms(TASKS, "primary").higher_is_better == {"digit": {"accuracy": True}, "age": {"mae": False}}
    assert delta_m_terms(TASKS, "all_metrics").higher_is_better == {
        "digit": {"accuracy": True, "f1": True}, "age": {"mae": False, "rmse": False, "r2": True},
    }


def test_all_metrics_by_hand_with_mixed_directions():
    # digit: accuracy +10 %, f1 +10 %; age: mae 4 -> 3 is +25 %, rmse 5 -> 6 is -20 %, r2 0.5 -> 0.4 is -20 %
    assert [_relative("digit", m) for m in ("accuracy", "f1")] == pytest.approx([10.0, 10.0])
    assert [_relative("age", m) for m in ("mae", "rmse", "r2")] == pytest.approx([25.0, -20.0, -20.0])
    by_hand = ((10.0 + 10.0) / 2 + (25.0 - 20.0 - 20.0) / 3) / 2  # within each task first, then across: 2.5
    assert delta_m(MODEL, BASE, delta_m_terms(TASKS, "all_metrics").higher_is_better) == pytest.approx(by_hand)
    assert by_hand == pytest.approx(2.5)


def test_within_task_averaging_first_is_not_the_flat_mean():
    flat = (10.0 + 10.0 + 25.0 - 20.0 - 20.0) / 5  # every metric weighs the same: 1.0
    got = delta_m(MODEL, BASE, delta_m_terms(TASKS, "all_metrics").higher_is_better)
    assert flat == pytest.approx(1.0) and got == pytest.approx(2.5)  # a task with three metrics weighs as much as one with two


def test_all_metrics_is_libmtls_count_improvement():
    """LibMTL's Δp = 100 · 1/T Σ_t 1/M_t Σ_m (−1)^w_t,m (B_t,m − N_t,m) / B_t,m with w = 1 where
    higher is better, written out over lists as LibMTL's results are kept."""
    rng = random.Random(3)
    terms = delta_m_terms(TASKS, "all_metrics").higher_is_better
    for _ in range(20):
        base = {t: {m: rng.uniform(0.1, 5) for m in ms} for t, ms in terms.items()}
        model = {t: {m: rng.uniform(0.1, 5) for m in ms} for t, ms in terms.items()}
        per_task = []
        for t, ms in terms.items():
            w = [1 if ms[m] else 0 for m in ms]
            b, n = [base[t][m] for m in ms], [model[t][m] for m in ms]
            per_task.append(sum((-1) ** wi * (bi - ni) / bi for wi, bi, ni in zip(w, b, n)) / len(ms))
        assert delta_m(model, base, terms) == pytest.approx(100 * sum(per_task) / len(per_task), rel=1e-12)


def test_primary_gives_exactly_the_old_numbers():
    """The formula before several metrics counted, copied from the previous ``delta_m``."""

    def old(metrics, baseline, higher_is_better):
        total = 0.0
        for task, higher in higher_is_better.items():
            base = float(baseline[task])
            change = (float(metrics[task]) - base) / base
            total += change if higher else -change
        return 100.0 * total / len(higher_is_better)

    rng = random.Random(0)
    terms = delta_m_terms(TASKS, "primary").higher_is_better
    assert delta_m(MODEL, BASE, terms) == pytest.approx((_relative("digit", "accuracy") + _relative("age", "mae")) / 2)  # 17.5
    for _ in range(50):
        base = {t: {m: rng.uniform(0.01, 10) for m in ms} for t, ms in BASE.items()}
        model = {t: {m: rng.uniform(0.01, 10) for m in ms} for t, ms in BASE.items()}
        primary = {t.name: t.metric for t in TASKS}
        flat_model = {t: model[t][m] for t, m in primary.items()}
        flat_base = {t: base[t][m] for t, m in primary.items()}
        assert delta_m(model, base, terms) == old(flat_model, flat_base, {t.name: t.higher_is_better for t in TASKS})  # bit for bit


@pytest.mark.parametrize("value, shown", [(0.0, "0.0"), (-0.2, "-0.2"), (None, "nan")])
def test_a_baseline_metric_that_cannot_divide_names_task_and_metric(value, shown):
    base = {**BASE, "age": {**BASE["age"], "r2": value}}
    with pytest.raises(RankError, match=rf"task 'age' has baseline {shown} for metric 'r2'") as info:
        delta_m(MODEL, base, delta_m_terms(TASKS, "all_metrics").higher_is_better)
    assert "positive" in str(info.value)
    assert delta_m(MODEL, base, delta_m_terms(TASKS, "primary").higher_is_better) == pytest.approx(17.5)  # r2 is not counted there


def test_a_missing_model_metric_gives_no_delta_m():
    model = {**MODEL, "digit": {"accuracy": 0.88}}
    assert math.isnan(delta_m(model, BASE, delta_m_terms(TASKS, "all_metrics").higher_is_better))


def test_an_unknown_convention_is_refused():
    with pytest.raises(RankError, match="search.delta_m must be one of primary, all_metrics, but got 'every'"):
        delta_m_terms(TASKS, "every")


# ----------------------------------------------------------------------------- the leaderboard
def _table(rows):
    """A trials table as ``study.trials_frame`` makes it: ``val.<task>`` and ``val.<task>.<metric>``."""
    out = []
    for trial, baseline, val in rows:
        out.append({
            "trial": trial, "state": "COMPLETE", "baseline": baseline, "arch": f"arch {trial}", "params": 100, "macs": 1000,
            **{f"val.{t.name}": val[t.name][t.metric] for t in TASKS},
            **{f"val.{t}.{m}": v for t, ms in val.items() for m, v in ms.items()},
        })
    return pd.DataFrame(out)


# trial 1 wins on the primary metrics, trial 2 on all of them
ONE = {"digit": {"accuracy": 0.90, "f1": 0.40}, "age": {"mae": 3.0, "rmse": 7.0, "r2": 0.30}}
TWO = {"digit": {"accuracy": 0.84, "f1": 0.66}, "age": {"mae": 3.8, "rmse": 4.5, "r2": 0.55}}
HIB = {t.name: t.higher_is_better for t in TASKS}


def test_the_convention_changes_the_ranking_and_the_board_says_which():
    table = _table([(0, True, BASE), (1, False, ONE), (2, False, TWO)])
    primary = leaderboard(table, HIB, delta_m_over=delta_m_terms(TASKS, "primary")).set_index("trial")
    every = leaderboard(table, HIB, delta_m_over=delta_m_terms(TASKS, "all_metrics")).set_index("trial")
    for board, convention in ((primary, "primary"), (every, "all_metrics")):
        assert board.attrs["delta_m_convention"] == convention
        for trial, val in ((0, BASE), (1, ONE), (2, TWO)):
            terms = delta_m_terms(TASKS, convention).higher_is_better
            by_hand = sum(sum(_relative(t, m, val) for m in ms) / len(ms) for t, ms in terms.items()) / len(terms)
            assert board.loc[trial, "delta_m"] == pytest.approx(by_hand)
    assert primary["rank"].idxmin() == 1 and every["rank"].idxmin() == 2
    assert pd.Series(primary["delta_m"]).equals(leaderboard(table, HIB)["delta_m"].set_axis(primary.index))  # the default is primary
    assert leaderboard(table, HIB, rank_by="age", delta_m_over=delta_m_terms(TASKS, "all_metrics"))["trial"].tolist()[0] == 1  # mae 3.0


def test_a_zero_baseline_metric_fails_delta_m_ranking_only():
    base = {**BASE, "age": {**BASE["age"], "r2": 0.0}}
    table = _table([(0, True, base), (1, False, ONE), (2, False, TWO)])
    with pytest.raises(RankError, match="task 'age' has baseline 0.0 for metric 'r2'"):
        leaderboard(table, HIB, delta_m_over=delta_m_terms(TASKS, "all_metrics"))
    board = leaderboard(table, HIB, rank_by="pareto", delta_m_over=delta_m_terms(TASKS, "all_metrics"))
    assert board["delta_m"].isna().all() and board["rank"].notna().all()


def test_the_study_note_states_the_boards_convention():
    table = _table([(0, True, BASE), (1, False, ONE)])
    tasks = [TaskInfo(t.name, t.metric, t.higher_is_better) for t in TASKS]
    assert DELTA_M_ALL_METRICS_CONVENTION in note_markdown(leaderboard(table, HIB, delta_m_over=delta_m_terms(TASKS, "all_metrics")), tasks)
    note = note_markdown(leaderboard(table, HIB), tasks)
    assert DELTA_M_CONVENTION in note and DELTA_M_ALL_METRICS_CONVENTION not in note


# ----------------------------------------------------------------------------- the spec and the study
def test_an_unknown_convention_in_the_spec_names_search_delta_m(tmp_path, capsys):
    with pytest.raises(SpecError, match=r"search\.delta_m: .*'primary' or 'all_metrics', got 'everything'"):
        parse_spec(small_spec(search={"delta_m": "everything"}))
    assert main(["validate", str(write_spec(tmp_path / "bad.yaml", small_spec(search={"delta_m": "everything"})))]) == 2
    one_line_error(capsys, "search.delta_m", "everything")
    assert parse_spec(small_spec()).search.delta_m == "primary"


def test_a_study_says_its_convention_and_an_old_one_means_primary(tmp_path):
    storage = f"sqlite:///{tmp_path / 'study.db'}"
    old = optuna.create_study(study_name="old", storage=storage)
    old.set_user_attr("spec", {"search": {"objective": "delta_m"}})  # written before search.delta_m existed
    assert delta_m_convention_of(old) == "primary"
    new = optuna.create_study(study_name="new", storage=storage)
    new.set_user_attr("spec", parse_spec(small_spec(search={"delta_m": "all_metrics"})).to_dict())
    assert delta_m_convention_of(new) == "all_metrics"
    bad = optuna.create_study(study_name="bad", storage=storage)
    bad.set_user_attr("spec", {"search": {"delta_m": "most"}})
    with pytest.raises(RunError, match="records search.delta_m 'most'"):
        delta_m_convention_of(bad)


# ----------------------------------------------------------------------------- a real search
SPEC = small_spec(
    name="dm",
    tasks={"digit": {"metric": "accuracy", "extra_metrics": ["f1", "balanced_accuracy"]}, "odd": {"metric": "accuracy"}},
    families={"tree": {}, "cross_stitch": {}},
    search={"trials": 4, "delta_m": "all_metrics", "export_top": 1},
)


@pytest.fixture(scope="module")
def dm_run(ray_session, tmp_path_factory):
    folder = tmp_path_factory.mktemp("dm")
    spec = write_spec(folder / "dm.yaml", SPEC)
    assert main(["run", str(spec), "--out", str(folder / "run"), "--quiet"]) == 0
    return folder / "run"


def _by_hand(val: dict, base: dict, metrics_of: dict) -> float:
    """Δm over every metric: the relative changes averaged within each task, then across tasks."""
    per_task = []
    for task, metrics in metrics_of.items():
        changes = []
        for m in metrics:
            change = (val[task][m] - base[task][m]) / base[task][m]
            changes.append(change if METRICS[m].higher_is_better else -change)
        per_task.append(sum(changes) / len(changes))
    return 100 * sum(per_task) / len(per_task)


def test_every_stored_delta_m_is_the_all_metrics_one(dm_run):
    study = study_of(dm_run, "dm")
    assert study.user_attrs["spec"]["search"]["delta_m"] == "all_metrics"
    complete = study.get_trials(states=(TrialState.COMPLETE,))
    base = min((t for t in complete if t.user_attrs.get("role") == "single_task"), key=lambda t: t.number).user_attrs["val"]
    every = {"digit": ["accuracy", "f1", "balanced_accuracy"], "odd": ["accuracy"]}
    primary = {"digit": ["accuracy"], "odd": ["accuracy"]}
    assert len(complete) >= 3
    board = pd.read_csv(dm_run / "leaderboard.csv").set_index("trial")
    for t in complete:
        val = t.user_attrs["val"]
        assert set(val["digit"]) == set(every["digit"])
        assert t.user_attrs["delta_m"] == pytest.approx(_by_hand(val, base, every), rel=1e-9, abs=1e-9), t.number
        assert t.values[0] == pytest.approx(t.user_attrs["delta_m"], rel=1e-9, abs=1e-9)  # the search's objective
        assert board.loc[t.number, "delta_m"] == pytest.approx(t.user_attrs["delta_m"], rel=1e-9, abs=1e-9)
        for task, metrics in every.items():
            for m in metrics:
                assert board.loc[t.number, f"val.{task}.{m}"] == pytest.approx(val[task][m])
    searched = [t for t in complete if t.user_attrs.get("role") != "single_task"]
    assert any(abs(_by_hand(t.user_attrs["val"], base, every) - _by_hand(t.user_attrs["val"], base, primary)) > 1e-6 for t in searched)


def _words(text: str) -> str:
    return " ".join(text.split())  # the console wraps long lines


def test_the_leaderboard_command_states_the_runs_convention(dm_run, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # nothing here reads a spec at hand: the study keeps the convention
    assert main(["leaderboard", str(dm_run)]) == 0
    out = _words(capsys.readouterr().out)
    assert _words(DELTA_M_ALL_METRICS_CONVENTION) in out and _words(DELTA_M_CONVENTION) not in out
    assert main(["leaderboard", str(dm_run), "--format", "csv", "--rank-by", "odd"]) == 0
    board = pd.read_csv(pd.io.common.StringIO(capsys.readouterr().out))
    ranked = board[board["rank"].notna()]
    assert ranked["val.odd"].is_monotonic_decreasing
    assert {"val.digit", "val.digit.f1", "val.digit.balanced_accuracy", "val.odd.accuracy"} <= set(board.columns)


def test_the_export_and_the_report_state_it_too(dm_run):
    metrics = json.loads((dm_run / "export" / "rank-1" / "metrics.json").read_text())
    assert metrics["delta_m_convention"] == "all_metrics"
    assert _words(DELTA_M_ALL_METRICS_CONVENTION) in _words((dm_run / "export" / "rank-1" / "MODEL_CARD.md").read_text())
    assert main(["report", str(dm_run)]) == 0
    page = (dm_run / "report.html").read_text()
    assert "LibMTL" in page and "averaged within each task first" in page


def test_resuming_with_another_convention_is_refused_before_anything_runs(dm_run, tmp_path, capsys):
    before = len(study_of(dm_run, "dm").trials)
    spec = write_spec(tmp_path / "primary.yaml", {**SPEC, "search": {**SPEC["search"], "delta_m": "primary"}})
    assert main(["run", str(spec), "--out", str(dm_run), "--resume", "--quiet"]) == 2
    one_line_error(capsys, "search.delta_m", "'all_metrics'", "'primary'")
    assert len(study_of(dm_run, "dm").trials) == before
