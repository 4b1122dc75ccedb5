"""The Tune searcher over Optuna's ask/tell (``share_search.engine.searcher``), with real Ray Tune, a
real SQLite study and real training on digits; and no private name of Ray or Optuna in
the package."""

from __future__ import annotations

import json
import re
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState

from share_search.train.problem import load_problem
from share_search.engine.runner import run_search
from share_search.engine.search import run_phase
from share_search.spec.model import parse_spec
from share_search.runs.record import study_records
from share_search.runs.study import create_or_load_study, enqueue, open_storage, storage_url

PACKAGE = Path(__file__).resolve().parents[1] / "share_search"
# attributes and modules of Ray and Optuna that are theirs to change: the list
PRIVATE = re.compile(r"_ot_|\._storage|_trial_id|fixed_params|error_file|_completed_trials|ray\._private")
# the one exception, isolated and explained in its docstring: binding a local Ray to loopback
ALLOWED = {("search.py", "    from ray._private import ray_constants")}

ASHA_SPEC = {
    "name": "asha",
    "seed": 1,
    "data": {"source": "digits", "max_samples": 200},
    "tasks": {"digit": None, "odd": None},
    "backbone": {"name": "mlp", "options": {"widths": [8, 8]}},
    "families": {"tree": {}, "cross_stitch": {}},
    "train": {"epochs": 4, "lr": {"low": 1e-5, "high": 1e-1, "log": True}},
    "search": {"sampler": "random", "trials": 8, "concurrency": 2, "export_top": 1,
               "scheduler": {"type": "asha", "grace_period": 1, "reduction_factor": 2}},
}


def test_the_package_uses_no_private_name_of_ray_or_optuna():
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        for line in path.read_text().splitlines():
            if PRIVATE.search(line) and (path.name, line) not in ALLOWED:
                found.append(f"{path.relative_to(PACKAGE)}: {line.strip()}")
    assert not found, "\n".join(found)


@pytest.mark.usefixtures("ray_session")
def test_a_search_tells_every_trial_pruned_or_complete_with_its_checkpoint(tmp_path):
    outcome = run_search(parse_spec(ASHA_SPEC), out=tmp_path / "asha", show_progress=False)
    study = optuna.load_study(study_name="asha", storage=f"sqlite:///{tmp_path / 'asha' / 'study.db'}")
    trials = study.get_trials()
    assert len(trials) == 8
    assert {t.state for t in trials} <= {TrialState.COMPLETE, TrialState.PRUNED}  # none left RUNNING or failed
    pruned = [t for t in trials if t.state == TrialState.PRUNED]
    complete = [t for t in trials if t.state == TrialState.COMPLETE]
    assert pruned, "ASHA stopped no trial"
    for t in pruned:  # stopped by the scheduler: PRUNED with its reason, never COMPLETE with a partial value
        assert t.user_attrs["fail_reason"] == "stopped early by the ASHA scheduler"
        assert len(t.intermediate_values) < 4  # Optuna keeps the last one as its value; the state keeps it off rankings
        assert "checkpoint" not in t.user_attrs
    checkpoints = _checkpoints(study)
    assert set(checkpoints) == {t.number for t in complete}
    for t in complete:
        assert t.user_attrs["fail_reason"] is None  # the reason a trial starts with ("interrupted") is gone
        folder = outcome.run_dir / checkpoints[t.number]
        assert folder.resolve().is_relative_to(outcome.run_dir / "ray")
        assert json.loads((folder / "trial.json").read_text())["optuna_trial"] == t.number
        if "role" not in t.user_attrs:  # sampled trials report Δm every epoch, as Optuna intermediate values
            assert len(t.intermediate_values) == t.user_attrs["best_epoch"] or len(t.intermediate_values) == 4
    assert (outcome.run_dir / "export" / "rank-1" / "weights.safetensors").is_file()


@pytest.mark.usefixtures("ray_session")
def test_a_queued_trial_runs_with_its_queued_values(tmp_path):
    spec = parse_spec({**ASHA_SPEC, "name": "queued", "train": {"epochs": 1, "lr": {"low": 1e-5, "high": 1e-1, "log": True},
                                                                 "batch_size": [16, 32]},
                       "search": {**ASHA_SPEC["search"], "scheduler": None, "objective": "per_task", "baselines": False}})
    problem = load_problem(spec)
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    storage = open_storage(storage_url(spec, run_dir))
    study = create_or_load_study(spec, problem, storage, resume=False)
    queued = {"family": "cross_stitch", "train.lr": 0.0123, "train.batch_size": 16}
    enqueue(study, queued)
    outcome = run_phase(study, problem, storage, run_dir, "queued", 2, None, False, False)
    assert outcome.counts["complete"] == 2
    first, second = study.get_trials()
    assert first.params.items() >= queued.items()  # the queue is served first, with the queued values
    assert set(second.params) >= {"family", "train.lr", "train.batch_size"}
    for t in (first, second):  # what the trial trained with, as its checkpoint records it
        plan = json.loads((run_dir / _checkpoints(study)[t.number] / "trial.json").read_text())["plan"]
        assert plan["arch"]["family"] == t.params["family"]
        assert plan["train"]["lr"] == t.params["train.lr"] and plan["train"]["batch_size"] == t.params["train.batch_size"]
    assert plan["train"]["lr"] != 0.0123


def _checkpoints(study) -> dict[int, str]:
    """Each complete trial's recorded checkpoint folder, relative to the run folder."""
    return {r.number: r.checkpoint for r in study_records(study) if r.state == "COMPLETE" and r.checkpoint}
