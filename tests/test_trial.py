"""The flat result a trial reports (Ray flattens nested dicts) and its reading back by the searcher.
Running trials under Ray is covered end to end in test_search.py."""

from types import SimpleNamespace

import pytest

from share_search.runs.rank import delta_m
from share_search.train.tasks import Task
from share_search.engine.trial import trial_result, val_from_result

TASKS = (
    Task(name="digit", label="digit", type="multiclass", n_outputs=10, metric="accuracy", extra_metrics=("f1",)),
    Task(name="age", label="age", type="regression", n_outputs=1, metric="mae"),
)
PROBLEM = SimpleNamespace(tasks=TASKS, spec=SimpleNamespace(search=SimpleNamespace(delta_m="primary")))
VAL = {"digit": {"accuracy": 0.9, "f1": 0.88}, "age": {"mae": 4.0}}


def test_result_is_flat_and_reads_back_to_the_same_metrics():
    result = trial_result(PROBLEM, VAL, baseline=None)
    assert result == {"digit.accuracy": 0.9, "digit.f1": 0.88, "age.mae": 4.0}
    assert val_from_result(TASKS, {**result, "epoch": 3, "train_loss": 1.2}) == VAL


def test_delta_m_only_once_the_baseline_is_known():
    baseline = {"digit": {"accuracy": 0.8, "f1": 0.8}, "age": {"mae": 5.0}}
    result = trial_result(PROBLEM, VAL, baseline)
    # +12.5 % accuracy and -20 % error (lower is better): both improvements
    assert result["delta_m"] == pytest.approx((12.5 + 20.0) / 2)
    assert result["delta_m"] == pytest.approx(delta_m(VAL, baseline, {"digit": {"accuracy": True}, "age": {"mae": False}}))


def test_a_metric_the_trial_did_not_report_is_left_out():
    assert val_from_result(TASKS, {"digit.accuracy": 0.5, "age.mae": 1.0}) == {"digit": {"accuracy": 0.5}, "age": {"mae": 1.0}}
