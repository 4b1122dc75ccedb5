"""Epoch selection follows the ranking (issue 20, "First, measure each trial right").

The single-task baseline keeps each task's column at that task's own best epoch; a trial
with several tasks keeps the epoch of its best Δm against the baseline when the baseline
is known, else of its best mean relative change since epoch 1; a single task keeps the
epoch of its best primary metric, not of its lowest validation loss.
"""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import optuna
import pytest
import torch
from optuna.trial import TrialState

from share_search.arch import build_model
from share_search.arch.backbones import make_backbone
from share_search.arch.tree import TreeConfig
from share_search.data import Split
from share_search.engine.searcher import trial_record
from share_search.runs.rank import delta_m
from share_search.runs.record import ROLE_SEARCHED, ROLE_SINGLE_TASK, TrialRecord, baseline_of
from share_search.train.loop import TrainConfig, fit
from tests.test_train import TASKS, digits  # noqa: F401  (digits: the module's fixture)

NAMES = [t.name for t in TASKS]
HIGHER = {t.name: {t.metric: t.higher_is_better} for t in TASKS}  # Δm over the primary metrics
CONFIG = TrainConfig(lr=0.01, epochs=5, batch_size=32, device="cpu")


def tree(config: TreeConfig, tasks=TASKS, seed: int = 0):
    torch.manual_seed(seed)
    return build_model(config, make_backbone("mlp", (64,), {"widths": (32, 32)}), tasks)


@pytest.fixture(scope="module")
def odd_unlearnable(digits):  # noqa: F811
    """Validation's odd labels flipped: the more odd learns, the worse its validation accuracy,
    while digit improves, so the two tasks' best epochs lie apart."""
    val = digits.val
    return dataclasses.replace(digits, val=Split(val.x, {**val.y, "odd": 1 - val.y["odd"]}))


def first_best(values: list[float]) -> int:
    """The 1-based epoch of the first maximum."""
    return int(np.argmax(values)) + 1


def primary_row(row: dict, tasks=TASKS) -> dict[str, dict[str, float]]:
    return {t.name: {t.metric: row[f"{t.name}.{t.metric}"]} for t in tasks}


def test_independent_columns_each_keep_their_own_best_epoch(odd_unlearnable):
    states = {}
    model = tree(TreeConfig.independent(NAMES, 2))
    result = fit(model, odd_unlearnable, TASKS, CONFIG, report=lambda r: states.setdefault(r.epoch, {k: v.clone() for k, v in r.model.state_dict().items()}))
    best = {t.name: first_best([row[f"{t.name}.{t.metric}"] for row in result.history]) for t in TASKS}
    assert best["digit"] != best["odd"], "the data should give the tasks different best epochs"
    assert result.best_epochs == best
    assert result.best_epoch == max(best.values())
    for task, epoch in best.items():
        assert result.val[task] == {m: result.history[epoch - 1][f"{task}.{m}"] for m in result.val[task]}
        column = {k: v for k, v in result.state_dict.items() if k.startswith((f"stages.0.{task}.", f"stages.1.{task}.", f"heads.{task}."))}
        assert column and all(torch.equal(v, states[epoch][k]) for k, v in column.items())
    assert [row["is_best"] for row in result.history] == [_improves(result.history, e) for e in range(1, 6)]


def _improves(history: list[dict], epoch: int) -> bool:
    """Epoch 1, or some task's primary metric beats every earlier epoch's."""
    earlier = history[: epoch - 1]
    return not earlier or any(
        history[epoch - 1][f"{t.name}.{t.metric}"] > max(row[f"{t.name}.{t.metric}"] for row in earlier) for t in TASKS
    )


@pytest.mark.parametrize("baseline", [{"digit": {"accuracy": 0.01}, "odd": {"accuracy": 1.0}}, {"digit": {"accuracy": 1.0}, "odd": {"accuracy": 0.01}}])
def test_with_a_baseline_several_tasks_keep_the_epoch_of_the_best_delta_m(odd_unlearnable, baseline):
    result = fit(tree(TreeConfig.hard_sharing(NAMES, 2)), odd_unlearnable, TASKS, CONFIG, baseline=baseline)
    scores = [delta_m(primary_row(row), baseline, HIGHER) for row in result.history]
    assert result.best_epoch == first_best(scores)
    assert result.best_epochs == {"digit": result.best_epoch, "odd": result.best_epoch}
    # digit weighs 100 times more under the first baseline, odd under the second: they pick apart
    digit_best = first_best([row["digit.accuracy"] for row in result.history])
    odd_best = first_best([row["odd.accuracy"] for row in result.history])
    assert result.best_epoch == (digit_best if baseline["digit"]["accuracy"] < baseline["odd"]["accuracy"] else odd_best)


def test_without_a_baseline_several_tasks_keep_the_best_mean_relative_change_since_epoch_1(odd_unlearnable):
    result = fit(tree(TreeConfig.hard_sharing(NAMES, 2)), odd_unlearnable, TASKS, CONFIG)
    first = {t: result.history[0][f"{t}.accuracy"] for t in NAMES}
    by_hand = [np.mean([(row[f"{t}.accuracy"] - first[t]) / first[t] for t in NAMES]) for row in result.history]
    assert by_hand[0] == 0.0
    assert result.best_epoch == first_best(by_hand)


def test_one_task_keeps_the_epoch_of_its_best_metric_not_of_its_lowest_loss(digits):  # noqa: F811
    digit = TASKS[:1]
    model = tree(TreeConfig.hard_sharing(["digit"], 2), digit, seed=2)
    result = fit(model, digits, digit, dataclasses.replace(CONFIG, lr=0.05, epochs=8, seed=2))
    accuracy = [row["digit.accuracy"] for row in result.history]
    assert int(np.argmin([row["val_loss"] for row in result.history])) + 1 != first_best(accuracy), "the data should part loss and accuracy"
    assert result.best_epoch == first_best(accuracy)
    assert result.val["digit"]["accuracy"] == max(accuracy)


def test_the_per_task_epochs_reach_the_study():
    result = {"final": True, "best_epoch": 4, "best_epochs_json": json.dumps({"digit": 4, "odd": 1}),
              "digit.accuracy": 0.9, "odd.accuracy": 0.8}
    record = trial_record(0, result, TrialState.COMPLETE, None, TASKS, None)
    assert record.best_epochs == {"digit": 4, "odd": 1}
    study = optuna.create_study()
    trial = study.ask()
    for key, value in record.to_user_attrs(TASKS).items():
        trial.set_user_attr(key, value)
    study.tell(trial, 1.0)
    assert TrialRecord.from_frozen_trial(study.trials[0]).best_epochs == {"digit": 4, "odd": 1}


def test_a_search_selects_every_trial_as_it_is_ranked(tmp_path, ray_session):
    """In a real search: the baseline holds each task at its own best epoch, and every searched
    trial at the epoch of its best Δm against that baseline, recomputed here from its history."""
    from share_search.engine.runner import run_search
    from share_search.spec.model import parse_spec

    spec = parse_spec({
        "name": "selection", "seed": 1,
        "data": {"source": "digits", "max_samples": 400},
        "tasks": {"digit": None, "odd": None},
        "backbone": {"name": "mlp", "options": {"widths": [16, 16]}},
        "families": {"tree": {}, "cross_stitch": {}},
        "train": {"epochs": 4, "lr": 0.02, "batch_size": 32},
        "search": {"sampler": "random", "trials": 4, "concurrency": 2, "export_top": 1},
    })
    outcome = run_search(spec, out=tmp_path / "selection", show_progress=False)
    records = [TrialRecord.from_frozen_trial(t) for t in optuna.load_study(
        study_name="selection", storage=f"sqlite:///{outcome.run_dir / 'study.db'}").trials]
    assert all(r.state == "COMPLETE" for r in records)
    base = baseline_of(records)
    assert base.best_epochs == {t.name: first_best([row[f"{t.name}.{t.metric}"] for row in base.history]) for t in TASKS}
    assert base.val == {t: {m: base.history[e - 1][f"{t}.{m}"] for m in base.val[t]} for t, e in base.best_epochs.items()}
    searched = [r for r in records if r.role == ROLE_SEARCHED]
    assert searched
    for r in searched:
        scores = [delta_m(primary_row(row), base.val, HIGHER) for row in r.history]
        assert r.best_epoch == first_best(scores), r.arch
        assert r.best_epochs == {t: r.best_epoch for t in NAMES}
    assert {r.role for r in records} >= {ROLE_SINGLE_TASK, ROLE_SEARCHED}
