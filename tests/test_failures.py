"""Where a failed trial's fault lies: in the user's code, data or values (a backbone that
raises, a loss that diverges) or in share-search itself. Each failure keeps its full
traceback (user attribute ``fail_traceback`` and ``run.log``) and its origin
(``fail_origin``); ``leaderboard --failures`` shows them, and a run with a failure inside
share-search exits 3."""

from __future__ import annotations

import pytest
import torch
from optuna.trial import TrialState

import share_search.engine.trial
from share_search.cli import EXIT_INTERNAL_FAILURE, main
from share_search.train.loop import TrainingDiverged
from share_search.engine.trial import ORIGIN_INTERNAL, ORIGIN_USER, failure_origin, val_from_result
from tests.runs import small_spec, study_of, write_spec


def _raised(call) -> BaseException:
    try:
        call()
    except BaseException as exc:  # noqa: BLE001 - the exception itself is what is tested
        return exc
    raise AssertionError("nothing was raised")


def test_the_innermost_frame_of_user_or_share_search_code_decides():
    # raised in share-search's own code (a wrong call into it)
    assert failure_origin(_raised(lambda: val_from_result(None, None))) == ORIGIN_INTERNAL
    # raised by torch on what code outside share-search (here: this test, as a user backbone) gave it
    assert failure_origin(_raised(lambda: torch.zeros(2, 3) @ torch.zeros(2, 3))) == ORIGIN_USER
    # a diverged loss and out-of-memory are the user's values, data or machine, wherever raised
    assert failure_origin(TrainingDiverged(1, "train", {"digit": float("nan")})) == ORIGIN_USER
    assert failure_origin(torch.OutOfMemoryError("CUDA out of memory")) == ORIGIN_USER


@pytest.mark.usefixtures("ray_session")
def test_user_faults_keep_their_traceback_and_the_run_exits_0(tmp_path, capsys):
    spec = small_spec(
        backbone={"name": "tests.fault_backbones:faulty", "options": {"widths": [16], "faults": {24: "raise", 40: "nan"}}},
        families={"tree": {}},
        train={"batch_size": [32, 24, 40]},
        search={"sampler": "grid", "objective": "per_task", "baselines": False, "export_top": 1},
    )
    out = tmp_path / "run"
    assert main(["run", str(write_spec(tmp_path / "user.yaml", spec)), "--out", str(out), "--quiet"]) == 0
    printed = capsys.readouterr().out
    assert "failures: 2 from your code, data or values, 0 inside share-search" in printed

    by_batch = {t.params["train.batch_size"]: t for t in study_of(out).get_trials()}
    assert by_batch[32].state == TrialState.COMPLETE and "fail_origin" not in by_batch[32].user_attrs
    raised, diverged = by_batch[24], by_batch[40]
    for t in (raised, diverged):
        assert t.state == TrialState.FAIL and t.user_attrs["fail_origin"] == ORIGIN_USER
    trace = raised.user_attrs["fail_traceback"]
    assert trace.startswith("Traceback (most recent call last):")
    assert "fault_backbones.py" in trace and trace.rstrip().endswith("RuntimeError: planted fault for batch size 24")
    assert "TrainingDiverged: training diverged in epoch 1" in diverged.user_attrs["fail_traceback"]
    assert "planted fault for batch size 24" in (out / "run.log").read_text()  # the traceback is in run.log too

    assert main(["leaderboard", str(out), "--failures"]) == 0
    listed = capsys.readouterr().out
    assert listed.startswith("2 failed trials")
    assert f"trial {raised.number}" in listed and f"trial {diverged.number}" in listed
    assert listed.count("origin : user") == 2
    assert "fault_backbones.py" in listed and "raise RuntimeError" in listed  # the user's line, from the traceback


@pytest.mark.usefixtures("ray_session")
def test_a_bug_in_share_search_is_internal_and_the_run_exits_non_zero(tmp_path, capsys, monkeypatch):
    # the backbone breaks share_search.engine.trial.count_macs in each process that builds it: in
    # this (driver) process too, so the original is put back after the test
    monkeypatch.setattr(share_search.engine.trial, "count_macs", share_search.engine.trial.count_macs)
    spec = small_spec(
        backbone={"name": "tests.internal_bug_backbones:mlp_breaking_share_search", "options": {"widths": [16]}},
        families={"tree": {}},
        train={"batch_size": [32, 24]},
        search={"sampler": "grid", "objective": "per_task", "baselines": False},
    )
    out = tmp_path / "run"
    code = main(["run", str(write_spec(tmp_path / "internal.yaml", spec)), "--out", str(out), "--quiet"])
    printed = capsys.readouterr().out
    assert code == EXIT_INTERNAL_FAILURE == 3, printed
    assert "failures: 0 from your code, data or values, 2 inside share-search" in printed
    assert "a bug in share-search, not in your spec" in printed and "--failures" in printed

    trials = study_of(out).get_trials()
    assert [t.state for t in trials] == [TrialState.FAIL, TrialState.FAIL]
    for t in trials:
        assert t.user_attrs["fail_origin"] == ORIGIN_INTERNAL
        assert t.user_attrs["fail_reason"].startswith("TypeError: ")
        assert "share_search/engine/trial.py" in t.user_attrs["fail_traceback"]

    assert main(["leaderboard", str(out), "--failures"]) == 0
    listed = capsys.readouterr().out
    assert listed.count("origin : internal") == 2
    assert "in run_trial" in listed and "in val_from_result" in listed  # where share-search failed
