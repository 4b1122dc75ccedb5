"""The trial record: what the engine writes into the study reads back whole, old trials
read back without the newer attributes, and the baseline and Δm are the same everywhere.

Studies here are real Optuna studies (SQLite in a temporary folder); no Ray.
"""

from __future__ import annotations

import subprocess
import sys
import json
import math
from pathlib import Path

import optuna
import pytest
import torch
from optuna.trial import TrialState

from share_search.runs.record import Cost, Failure, Plan, TrialRecord, baseline_metrics, baseline_of, study_records
from share_search.runs.report import TaskInfo, report_data, study_leaderboard

TASKS = (TaskInfo("digit", "accuracy", True), TaskInfo("size", "mae", False))
TREE = {"family": "tree", "stages": [[["digit"], ["size"]]]}
HISTORY = [{"epoch": 1, "phase": "all", "digit.accuracy": 0.5, "size.mae": 2.0}, {"epoch": 2, "phase": "all", "digit.accuracy": 0.6, "size.mae": 1.5}]


def _study(tmp_path: Path) -> optuna.Study:
    study = optuna.create_study(storage=f"sqlite:///{tmp_path / 'study.db'}", study_name="s", directions=["maximize"])
    study.set_user_attr("tasks", [t._asdict() for t in TASKS])
    return study


def _store(study: optuna.Study, attrs: dict, state: TrialState = TrialState.COMPLETE, value: float | None = 0.0) -> optuna.trial.FrozenTrial:
    """One trial whose user attributes are ``attrs``, written one by one as the engine does."""
    trial = study.ask()
    for key, value_ in attrs.items():
        trial.set_user_attr(key, value_)
    study.tell(trial, [value] if state == TrialState.COMPLETE else None, state=state)
    return study.trials[trial.number]


def _searcher_attrs(val: dict, delta_m: float, role: str | None = None, **more) -> dict:
    """The attributes the searcher's ``_tell`` wrote before the record existed, name for name."""
    attrs = {
        "family": "tree", "arch": "tree: [digit][size]", "arch_json": json.dumps(TREE), "params": 1234, "macs": 5678,
        "time_s": 1.25, "best_epoch": 2, "val": val, "delta_m": delta_m, "node": "abc123", "history": HISTORY,
        "details": {"order": ["digit", "size"]},
        "val.digit": val["digit"]["accuracy"], "val.size": val["size"]["mae"],
    }
    if role:
        attrs["role"] = role
    return {**attrs, **more}


def _val(acc: float, mae: float) -> dict:
    return {"digit": {"accuracy": acc, "f1": acc / 2}, "size": {"mae": mae}}


# --------------------------------------------------------------------------- round trips
def test_a_record_written_to_the_study_reads_back_equal(tmp_path):
    record = TrialRecord(
        number=0, state="COMPLETE", role="hard_sharing",
        plan=Plan(arch=TREE, train={"lr": 0.01, "epochs": 2, "seed": 7}), params={},
        family="tree", arch="tree: [digit][size]", val=_val(0.9, 1.1), delta_m=3.5,
        cost=Cost(params=1234, macs=5678, time_s=1.25), best_epoch=2, history=HISTORY, details={"order": ["digit", "size"]},
        node="abc123", checkpoint="ray/search-1/trial_0/checkpoint_000000", retry_of=None,
    )
    study = _study(tmp_path)
    t = _store(study, record.to_user_attrs(TASKS), value=3.5)
    assert TrialRecord.from_frozen_trial(t) == record
    assert record.plan.seed == 7
    assert t.user_attrs["val.digit"] == 0.9 and t.user_attrs["val.size"] == 1.1  # the dashboard's sortable columns


def test_a_failure_keeps_its_traceback_and_origin(tmp_path):
    failure = Failure("RuntimeError: boom", "Traceback (most recent call last):\n  ...\nRuntimeError: boom", "internal")
    record = TrialRecord(number=0, state="FAIL", plan=Plan(arch=TREE), family="tree", failure=failure)
    t = _store(_study(tmp_path), record.to_user_attrs(TASKS), state=TrialState.FAIL)
    assert TrialRecord.from_frozen_trial(t).failure == failure
    assert t.user_attrs["fail_traceback"].endswith("RuntimeError: boom") and t.user_attrs["fail_origin"] == "internal"


def test_to_user_attrs_writes_todays_names_and_values(tmp_path):
    """What the searcher writes today, read as a record and written again, is the same, name for name."""
    today = _searcher_attrs(_val(0.9, 1.1), 2.5, role="single_task", retry_of=3, fixed_arch=json.dumps(TREE, sort_keys=True))
    t = _store(_study(tmp_path), today)
    record = TrialRecord.from_frozen_trial(t)
    assert record.to_user_attrs(TASKS) == today
    assert record.role == "single_task" and record.retry_of == 3 and record.fixed_arch == TREE
    assert record.cost == Cost(1234, 5678, 1.25) and record.plan.arch == TREE


def test_an_old_trial_reads_back_without_the_newer_attributes(tmp_path):
    """A trial recorded before training values, tracebacks and checkpoints were kept."""
    study = _study(tmp_path)
    old = _store(study, _searcher_attrs(_val(0.9, 1.1), 1.0))
    failed = _store(study, {"family": "tree", "arch_json": json.dumps(TREE), "fail_reason": "ValueError: bad"}, state=TrialState.FAIL)
    record = TrialRecord.from_frozen_trial(old)
    assert record.role == "searched" and record.plan.train is None and record.plan.seed is None
    assert record.checkpoint is None and record.failure is None
    assert set(record.to_user_attrs(TASKS)) == set(old.user_attrs)  # no new attribute invented
    fail = TrialRecord.from_frozen_trial(failed)
    assert fail.failure == Failure("ValueError: bad") and fail.val is None and fail.to_user_attrs(TASKS) == failed.user_attrs


def test_a_running_trial_takes_its_family_from_the_sampled_values(tmp_path):
    study = _study(tmp_path)
    trial = study.ask()
    trial.suggest_categorical("family", ["tree", "cross_stitch"])
    (record,) = study_records(study)
    assert record.state == "RUNNING" and record.family is None and record.family_name in ("tree", "cross_stitch")
    assert record.metric(TASKS[0]) != record.metric(TASKS[0])  # NaN: nothing measured yet


# --------------------------------------------------------------------------- the baseline
def _two_baselines(tmp_path) -> optuna.Study:
    """Trial 0: single-task, weak. Trial 1: hard sharing. Trial 2: the single-task networks
    again (a retry after resume), stronger. Trial 3: sampled. Trial 4: a failed single-task run."""
    study = _study(tmp_path)
    weak, strong = _val(0.80, 2.0), _val(0.90, 1.0)
    hard, searched = _val(0.84, 1.5), _val(0.88, 1.6)
    for val, role in ((weak, "single_task"), (hard, "hard_sharing"), (strong, "single_task"), (searched, None)):
        _store(study, _searcher_attrs(val, _by_hand(val, weak), role=role))
    _store(study, {"role": "single_task", "fail_reason": "RuntimeError: x"}, state=TrialState.FAIL)
    return study


def _by_hand(val: dict, base: dict) -> float:
    """Δm as the README defines it, written out: the mean relative change, signed by direction."""
    acc = (val["digit"]["accuracy"] - base["digit"]["accuracy"]) / base["digit"]["accuracy"]
    mae = (val["size"]["mae"] - base["size"]["mae"]) / base["size"]["mae"]
    return 100 * (acc - mae) / 2


def test_with_two_complete_baselines_the_lowest_numbered_is_the_baseline_everywhere(tmp_path):
    from share_search.engine.search import baseline_from_study

    study = _two_baselines(tmp_path)
    records = study_records(study)
    assert baseline_of(reversed(records)).number == 0
    assert baseline_metrics(records, TASKS) == {"digit": {"accuracy": 0.80}, "size": {"mae": 2.0}}

    class Problem:  # what baseline_from_study reads of a problem
        tasks = TASKS

    assert baseline_from_study(study, Problem()) == {0: {"digit": {"accuracy": 0.80}, "size": {"mae": 2.0}}}  # by repeat (search.repeats)
    board = study_leaderboard(study).set_index("trial")
    assert board.loc[0, "delta_m"] == 0.0
    assert board.loc[2, "delta_m"] == pytest.approx(_by_hand(_val(0.90, 1.0), _val(0.80, 2.0)))  # the stronger one is just a trial


def test_the_leaderboards_delta_m_is_the_one_recomputed_by_hand_and_the_one_recorded(tmp_path):
    study = _two_baselines(tmp_path)
    board = study_leaderboard(study).set_index("trial")
    base = study.trials[0].user_attrs["val"]
    for t in study.get_trials(states=(TrialState.COMPLETE,)):
        assert board.loc[t.number, "delta_m"] == pytest.approx(_by_hand(t.user_attrs["val"], base), abs=1e-12)
        assert board.loc[t.number, "delta_m"] == pytest.approx(t.user_attrs["delta_m"], abs=1e-12)
    assert math.isnan(board.loc[4, "delta_m"])  # the failed one has no Δm


def test_no_complete_baseline_means_none():
    records = [TrialRecord(0, "FAIL", role="single_task"), TrialRecord(1, "COMPLETE", val=_val(0.9, 1.0))]
    assert baseline_of(records) is None and baseline_metrics(records, TASKS) is None


# --------------------------------------------------------------------------- readers
def test_the_report_uses_the_leaderboard_it_is_given(tmp_path):
    study = _two_baselines(tmp_path)
    board = study_leaderboard(study, rank_by="digit")
    data = report_data(study, top=2, board=board)
    assert data.board is board and data.rank_by == "digit"
    assert [p.trial for p in data.points][:2] == [2, 3]
    assert [c.values["digit"] for c in data.curves] == [[0.5, 0.6], [0.5, 0.6]]


def test_the_model_card_takes_directions_from_the_metric_registry():
    """Directions come from each metric's registered definition (rmse is lower-is-better,
    which the old hard-coded pair happened to hold; r2 and auc are higher-is-better)."""
    from share_search.runs.export import model_card

    recipe = {"arch": TREE, "spec": {"name": "s"}, "backbone": {"name": "mlp", "options": {}, "input_shape": [4]}, "data": {},
              "tasks": [{"name": "digit", "metric": "accuracy", "extra_metrics": ["auc"]}, {"name": "size", "metric": "mae", "extra_metrics": ["rmse", "r2"]}]}
    card = model_card(recipe, {"rank": 1, "trial": 0, "val": {}, "test": {}})
    assert "| digit | accuracy | higher is better |" in card
    assert "| digit | auc | higher is better |" in card
    assert "| size | mae | lower is better |" in card
    assert "| size | rmse | lower is better |" in card
    assert "| size | r2 | higher is better |" in card


def test_export_writes_the_plan_the_record_keeps(tmp_path):
    """The recipe's training values come from the study's record, not from the checkpoint's
    trial.json (which only a trial recorded before the record kept them is read from)."""
    from share_search.arch import build_model, config_from_dict
    from share_search.runs.export import TRIAL_FILE, WEIGHTS, export_ranked, save_weights
    from share_search.train.problem import load_problem
    from share_search.spec.model import parse_spec
    from tests.runs import small_spec

    problem = load_problem(parse_spec(small_spec(families={"tree": {}})))
    arch = {"family": "tree", "stages": [[["digit"], ["odd"]]]}
    run_dir = tmp_path / "run"
    checkpoints = []
    for n in (0, 1):
        ckpt = run_dir / "ray" / "search" / f"trial_{n}" / "checkpoint_000000"
        ckpt.mkdir(parents=True)
        save_weights(build_model(config_from_dict(arch), problem.backbone, problem.tasks).state_dict(), ckpt / WEIGHTS)
        (ckpt / TRIAL_FILE).write_text(json.dumps({"optuna_trial": n, "epoch": 1, "plan": {"arch": arch, "train": {"lr": 0.5, "from": "trial.json"}}}))
        checkpoints.append(ckpt)
    val = {"digit": {"accuracy": 0.5}, "odd": {"accuracy": 0.7}}
    records = [
        TrialRecord(0, "COMPLETE", plan=Plan(arch=arch, train={"lr": 0.01, "seed": 3}), family="tree", arch="tree", val=val, best_epoch=1),
        TrialRecord(1, "COMPLETE", plan=Plan(arch=arch), family="tree", arch="tree", val=val, best_epoch=1),  # recorded before `train`
    ]
    from share_search.runs.study import leaderboard_of

    board = leaderboard_of(records, problem.tasks, rank_by="pareto")
    torch.manual_seed(0)
    folders = export_ranked(run_dir, problem, board, records, top=2)
    trains = {json.loads((f / "metrics.json").read_text())["trial"]: json.loads((f / "recipe.json").read_text())["train"] for f in folders}
    assert trains == {0: {"lr": 0.01, "seed": 3}, 1: {"lr": 0.5, "from": "trial.json"}}


# --------------------------------------------------------------------------- imports
def test_the_record_module_imports_neither_torch_nor_ray():
    """It is read wherever a run folder is read: importing it loads no torch, Optuna or Ray."""
    code = "import json, sys; import share_search.runs.record; print(json.dumps([m for m in ('torch', 'optuna', 'ray') if m in sys.modules]))"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=Path(__file__).resolve().parents[1])
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout) == []


# --------------------------------------------------------------------------- a run
def test_a_run_builds_its_leaderboard_once(tmp_path, ray_session, monkeypatch):
    """The run ranks once; the export, the study note and its figures use that board."""
    from share_search.runs import rank
    from share_search.engine.runner import run_search
    from share_search.spec.model import parse_spec
    from tests.runs import small_spec

    built = []
    fronts = rank.pareto_fronts
    monkeypatch.setattr(rank, "pareto_fronts", lambda *a, **k: built.append(1) or fronts(*a, **k))  # one call per leaderboard
    spec = parse_spec(small_spec(families={"tree": {}}, search={"trials": 2, "export_top": 1}))
    outcome = run_search(spec, out=tmp_path / "run", show_progress=False)
    assert len(built) == 1
    assert (outcome.run_dir / "export" / "rank-1" / "recipe.json").is_file()
    study = optuna.load_study(study_name="small", storage=f"sqlite:///{outcome.run_dir / 'study.db'}")
    names = [m.filename for m in optuna.artifacts.get_all_artifact_meta(study)]
    assert len(names) == 1 and names[0].startswith("export-rank-1-")  # the study was annotated, from the same board
