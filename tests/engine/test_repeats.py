"""Seeds per architecture (``search.repeats``) in real searches: Ray Tune trains each seed as
its own Ray trial, in parallel; the Optuna trial is told the mean once every seed ended; Δm
pairs each seed with the single-task networks of the same seed; a resumed run keeps the
seeds that finished.

Run these under the shared Ray lock (``flock /tmp/share-search-ray.lock``).
"""

from __future__ import annotations

import json
import os
import signal
import uuid

import optuna
import pandas as pd
import pytest

from share_search.cli import main
from share_search.runs.study import RETRY_OF
from tests.runs import end_marked, one_line_error, ray_trial_folders, running_driver, small_spec, study_of, wait_for_a_finished_seed, write_spec

BACKBONE = "tests.engine.seed_backbones:by_seed"
MARKER = "SHARE_SEARCH_TEST_MARKER"
SLOW = "SHARE_SEARCH_TEST_SLOW_SEED"


def _one_architecture(tmp_path, **options):
    """One sampled architecture, two seeds (7 and 8), no references: one Tuner phase of two Ray trials."""
    return small_spec(
        seed=7,
        backbone={"name": BACKBONE, "options": {"widths": [16], **options}},
        families={"tree": {}},
        search={"trials": 1, "repeats": 2, "concurrency": 2, "baselines": False, "objective": "per_task"},
    )


def test_seeds_are_separate_ray_trials_that_train_at_the_same_time(tmp_path, ray_session):
    # each seed waits at its first batch until both seeds started: it fails if they ran one after another
    spec = write_spec(tmp_path / "s.yaml", _one_architecture(tmp_path, barrier=str(tmp_path / "barrier"), parties=2))
    assert main(["run", str(spec), "--out", str(tmp_path / "run"), "--quiet"]) == 0
    (trial,) = study_of(tmp_path / "run").get_trials()
    assert trial.state == optuna.trial.TrialState.COMPLETE
    seeds = trial.user_attrs["seeds"]
    assert [(s["repeat"], s["seed"], s["state"]) for s in seeds] == [(0, 7, "COMPLETE"), (1, 8, "COMPLETE")]
    assert sorted(p.name for p in (tmp_path / "barrier").iterdir()) == ["7", "8"]
    # two Ray trials, each with its own checkpoint, whose training overlapped in time
    assert len({s["checkpoint"] for s in seeds}) == 2
    for s in seeds:
        marker = json.loads((tmp_path / "run" / s["checkpoint"] / "trial.json").read_text())
        assert marker["plan"]["train"]["seed"] == s["seed"] and marker["optuna_trial"] == trial.number
    assert max(s["started_at"] for s in seeds) < min(s["ended_at"] for s in seeds)
    # one Optuna trial, told the mean over its seeds; its recipe and exported weights are the first seed's
    for task, value in zip(("digit", "odd"), trial.values):
        assert value == pytest.approx(sum(s["val"][task]["accuracy"] for s in seeds) / 2, abs=1e-12)
    assert trial.user_attrs["train"]["seed"] == 7 and trial.user_attrs["checkpoint"] == seeds[0]["checkpoint"]
    assert trial.user_attrs["n_seeds"] == 2
    metrics = json.loads((tmp_path / "run" / "export" / "rank-1" / "metrics.json").read_text())
    assert metrics["seeds"]["n"] == 2 and metrics["seeds"]["weights_seed"] == 7


def test_an_architecture_with_a_failed_seed_fails_and_keeps_its_other_seeds(tmp_path, ray_session):
    spec = write_spec(tmp_path / "s.yaml", _one_architecture(tmp_path, fail_seed=8))
    main(["run", str(spec), "--out", str(tmp_path / "run"), "--quiet"])
    (trial,) = study_of(tmp_path / "run").get_trials()
    assert trial.state == optuna.trial.TrialState.FAIL
    assert trial.user_attrs["fail_reason"].startswith("seed 8 (repeat 2 of 2) failed: RuntimeError: planted fault for seed 8")
    assert trial.user_attrs["fail_origin"] == "user"
    assert [(s["seed"], s["state"]) for s in trial.user_attrs["seeds"]] == [(7, "COMPLETE"), (8, "FAIL")]


def _by_hand(val, base, tasks=("digit", "odd")):
    """Δm of one seed, from the README's formula: both tasks' accuracy is higher-is-better."""
    return 100 / len(tasks) * sum((val[t]["accuracy"] - base[t]["accuracy"]) / base[t]["accuracy"] for t in tasks)


def _mean_se(xs):
    mean = sum(xs) / len(xs)
    return mean, (sum((x - mean) ** 2 for x in xs) / (len(xs) - 1) / len(xs)) ** 0.5


def test_delta_m_pairs_each_seed_with_the_baseline_of_the_same_seed(tmp_path, ray_session, capsys):
    spec = write_spec(tmp_path / "s.yaml", small_spec(
        name="paired", seed=3, families={"tree": {}, "cross_stitch": {}}, train={"epochs": 2},
        search={"trials": 3, "repeats": 3, "concurrency": 3, "export_top": 2},  # the two references and one sampled trial
    ))
    assert main(["run", str(spec), "--out", str(tmp_path / "run")]) == 0
    out = capsys.readouterr().out
    study = study_of(tmp_path / "run", "paired")
    trials = {t.number: t for t in study.get_trials()}
    assert len(trials) == 3 and all(t.state.name == "COMPLETE" for t in trials.values())
    baseline = next(t for t in trials.values() if t.user_attrs.get("role") == "single_task")
    base = {s["repeat"]: s["val"] for s in baseline.user_attrs["seeds"]}
    assert sorted(base) == [0, 1, 2] and [s["seed"] for s in baseline.user_attrs["seeds"]] == [3, 4, 5]
    board = pd.read_csv(tmp_path / "run" / "leaderboard.csv").set_index("trial")
    for number, t in trials.items():
        seeds = t.user_attrs["seeds"]
        per_seed = [_by_hand(s["val"], base[s["repeat"]]) for s in seeds]
        for s, dm in zip(seeds, per_seed):
            assert s["delta_m"] == pytest.approx(dm, abs=1e-9)
        mean, se = _mean_se(per_seed)
        assert t.values[0] == pytest.approx(mean, abs=1e-9)  # the objective Optuna was told
        assert board.loc[number, "delta_m"] == pytest.approx(mean, abs=1e-9)
        assert board.loc[number, "delta_m.se"] == pytest.approx(se, abs=1e-9)
        assert board.loc[number, "n_seeds"] == 3
        for task in ("digit", "odd"):
            values = [s["val"][task]["accuracy"] for s in seeds]
            assert board.loc[number, f"val.{task}"] == pytest.approx(_mean_se(values)[0], abs=1e-12)
            assert board.loc[number, f"val.{task}.se"] == pytest.approx(_mean_se(values)[1], abs=1e-12)
    assert board["tied_with_best"].notna().all()  # three seeds each: every ranked row is tested
    winner = board[board["rank"] == 1].index[0]
    assert board.loc[winner, "tied_with_best"]
    line = next(line for line in out.splitlines() if line.startswith("winner: "))
    assert f"trial {winner}" in line and ("TIED" in line or "SEPARATED" in line)
    runner_up = board[board["rank"] == 2].iloc[0]
    assert ("TIED" in line) == bool(runner_up["tied_with_best"])
    card = (tmp_path / "run" / "export" / "rank-1" / "MODEL_CARD.md").read_text()
    assert "mean over 3 seeds" in card and ("TIED" in line) == ("TIED" in card)


def test_a_resumed_run_keeps_the_seeds_that_finished(tmp_path, ray_session):
    spec = write_spec(tmp_path / "s.yaml", _one_architecture(tmp_path, slow_seed=8, slow_env=SLOW))
    run_dir = tmp_path / "run"
    marker = uuid.uuid4().hex
    try:  # the driver's seed 8 sleeps (SLOW is set for it and its Ray workers only): kill it once seed 7 finished
        with running_driver(["run", str(spec), "--out", str(run_dir), "--quiet"], tmp_path / "driver.log", {MARKER: marker, SLOW: "1"}) as proc:
            wait_for_a_finished_seed(proc, run_dir / "study.db")
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait(timeout=300)
    finally:
        end_marked(f"{MARKER}={marker}")
    (stopped,) = study_of(run_dir).get_trials()
    kept = [s for s in stopped.user_attrs["seeds"] if s["state"] == "COMPLETE"]
    assert [s["seed"] for s in kept] == [7]

    assert main(["run", str(spec), "--out", str(run_dir), "--quiet", "--resume"]) == 0
    first, retry = study_of(run_dir).get_trials()
    assert retry.user_attrs[RETRY_OF] == first.number and retry.state.name == "COMPLETE"
    seeds = retry.user_attrs["seeds"]
    assert [s["seed"] for s in seeds] == [7, 8]
    assert seeds[0] == kept[0]  # the same record: same start, end, checkpoint; it did not train again
    assert seeds[1]["started_at"] > kept[0]["ended_at"]
    ray_folders = sorted(p.name for p in (run_dir / "ray").iterdir() if p.is_dir())
    resumed = ray_trial_folders(run_dir / "ray" / ray_folders[-1])
    assert len(ray_folders) == 2 and len(resumed) == 1, (ray_folders, resumed)  # one Ray trial: seed 8's


def test_asha_with_repeats_is_refused_naming_both_keys(tmp_path, capsys):
    spec = write_spec(tmp_path / "s.yaml", small_spec(search={"repeats": 2, "scheduler": {"type": "asha"}}))
    assert main(["validate", str(spec)]) == 2
    one_line_error(capsys, "search.repeats", "search.scheduler", "repeats: 2")


def test_a_run_resumes_with_the_repeats_it_started_with(tmp_path, capsys):
    first = write_spec(tmp_path / "a" / "s.yaml", small_spec(search={"repeats": 2}))
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / "spec.resolved.yaml").write_text(first.read_text())
    again = write_spec(tmp_path / "b" / "s.yaml", small_spec(search={"repeats": 3}))
    assert main(["run", str(again), "--out", str(run_dir), "--quiet", "--resume"]) == 2
    one_line_error(capsys, "search.repeats", "(2 for", "got 3")
