"""Interrupt and resume, for real: a driver in a subprocess gets Ctrl-C (SIGINT to its process
group) or ``kill -9`` mid-search, then ``--resume`` finishes the same study.

Checked: no completed trial is lost or re-run, trials left unfinished fail as interrupted
and are retried with the same values, numbering continues, and the finished trials number
exactly what the spec asked for. Every process the killed driver left behind is found by a
marker in its environment and ended (only those).
"""

import os
import signal
import sqlite3
import time
import uuid

import pandas as pd
import pytest
from optuna.trial import TrialState

from share_search.cli import main
from share_search.runs.study import RETRY_OF, finished_trials, is_interrupted, planned_params
from tests.runs import alive_marked, end_marked, small_spec, running_driver, study_of, write_spec

TRIALS = 5  # in all; with baselines, two of them are the references
MARKER = "SHARE_SEARCH_TEST_MARKER"


def _spec(baselines: bool):
    # a 0.2 s sleep per training batch keeps each trial running a second or two, so a signal
    # sent once a sampled trial has finished finds others running
    search = {"trials": TRIALS, "export_top": 1}
    if not baselines:  # one Tuner phase instead of two: a faster test
        search.update(baselines=False, objective="per_task")
    return small_spec(backbone={"name": "tests.fault_backbones:faulty", "options": {"widths": [16], "delay": 0.2}}, search=search)


def _wait_mid_search(proc, run_dir, complete: int, timeout=600.0):
    """Block until the study holds ``complete`` finished trials and a running one."""
    db = run_dir / "study.db"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, "the driver ended before it could be interrupted"
        states = []
        if (run_dir / "spec.resolved.yaml").exists():
            try:  # plain SQL: cheaper than loading the study every poll
                with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5) as con:
                    states = [s for (s,) in con.execute("SELECT state FROM trials")]
            except sqlite3.OperationalError:
                pass
        if states.count("COMPLETE") >= complete and "RUNNING" in states:
            return
        time.sleep(0.5)
    raise AssertionError(f"no {complete} finished and one running trial after {timeout} s")


def _snapshot(study):
    return {t.number: (t.state, t.values, t.params, t.datetime_complete) for t in study.get_trials() if t.state == TrialState.COMPLETE}


@pytest.mark.parametrize("how,baselines", [("SIGINT", True), ("SIGKILL", False)])
def test_interrupted_search_resumes_the_same_study(tmp_path, ray_session, capsys, how, baselines):
    spec = write_spec(tmp_path / "small.yaml", _spec(baselines))
    run_dir = tmp_path / "run"
    marker = uuid.uuid4().hex
    try:
        with running_driver(["run", str(spec), "--out", str(run_dir), "--quiet"], tmp_path / "driver.log", {MARKER: marker}) as proc:
            _wait_mid_search(proc, run_dir, complete=3 if baselines else 1)  # past the references
            if how == "SIGINT":
                os.killpg(proc.pid, signal.SIGINT)  # what Ctrl-C in a terminal does
            else:
                os.kill(proc.pid, signal.SIGKILL)
            code = proc.wait(timeout=300)
    finally:
        left_behind = alive_marked(f"{MARKER}={marker}", wait=20.0) if how == "SIGINT" else []
        end_marked(f"{MARKER}={marker}")  # after kill -9: the Ray processes that driver started
    assert not alive_marked(f"{MARKER}={marker}", wait=10.0)
    output = (tmp_path / "driver.log").read_text()

    study = study_of(run_dir)
    before = _snapshot(study)
    stopped = [t for t in study.get_trials() if t.state not in (TrialState.COMPLETE, TrialState.WAITING)]
    assert len(before) >= (3 if baselines else 1) and stopped, [t.state for t in study.get_trials()]
    if how == "SIGINT":
        assert code == 130, output
        assert "continue with --resume" in output
        # the driver marked what it stopped, ranked nothing and left no Ray process behind
        # (interrupted: FAIL with the interrupted reason, or with none when Ctrl-C came between Optuna's ask and ``ask`` giving it)
        assert all(is_interrupted(t) for t in stopped)
        assert not (run_dir / "leaderboard.csv").exists()
        assert not left_behind, left_behind
    else:
        assert code == -signal.SIGKILL
        assert all(t.state == TrialState.RUNNING for t in stopped)  # nobody could mark them

    # without --resume the run folder is refused and left as it was
    files = sorted(p.relative_to(run_dir) for p in run_dir.rglob("*"))
    assert main(["run", str(spec), "--out", str(run_dir), "--quiet"]) == 2
    assert "continue it with --resume" in capsys.readouterr().err
    assert sorted(p.relative_to(run_dir) for p in run_dir.rglob("*")) == files

    assert main(["run", str(spec), "--out", str(run_dir), "--quiet", "--resume"]) == 0, capsys.readouterr()
    study = study_of(run_dir)
    trials = study.get_trials()
    after = _snapshot(study)
    assert {n: after[n] for n in before} == before  # nothing completed was lost or re-run
    assert len(finished_trials(study)) == TRIALS
    assert all(t.state in (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL) for t in trials)
    retries = {t.user_attrs[RETRY_OF]: t for t in trials if RETRY_OF in t.user_attrs}
    # a re-proposal stopped while it waited for its twin (duplicate_of) is not retried: the twin's retry trains it
    trained = [t for t in stopped if t.user_attrs.get("duplicate_of") is None]
    assert sorted(retries) == sorted(t.number for t in trained)
    for t in stopped:
        assert is_interrupted(study.trials[t.number])
    for t in trained:
        retry = retries[t.number]
        assert retry.number > max(before) and retry.state == TrialState.COMPLETE
        # what the stopped trial had sampled or was queued with; values it never asked for
        # (killed between Optuna's ask and its first suggestion) are sampled anew
        assert planned_params(t).items() <= retry.params.items(), (t.params, retry.params)
        assert retry.user_attrs.get("role") == t.user_attrs.get("role")
    assert not set(after) & {t.user_attrs.get(RETRY_OF) for t in trials}  # no completed trial ran twice

    board = pd.read_csv(run_dir / "leaderboard.csv")
    assert len(board) == TRIALS and set(board["state"]) == {"COMPLETE"}
    assert (run_dir / "export" / "rank-1" / "weights.safetensors").is_file()
