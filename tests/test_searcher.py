"""The Tune searcher over Optuna's ask/tell (``share_search.engine.searcher``), with real Ray Tune, a
real SQLite study and real training on digits; and no private name of Ray or Optuna in
the package."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from share_search.train.problem import load_problem
from share_search.engine.search import run_phase
from share_search.spec.model import parse_spec
from share_search.runs.record import study_records
from share_search.runs.study import create_or_load_study, enqueue, open_storage, storage_url

PACKAGE = Path(__file__).resolve().parents[1] / "share_search"
# attributes and modules of Ray and Optuna that are theirs to change: the list
PRIVATE = re.compile(r"_ot_|\._storage|_trial_id|fixed_params|error_file|_completed_trials|ray\._private")
# the one exception, isolated and explained in its docstring: binding a local Ray to loopback
ALLOWED = {("search.py", "    from ray._private import ray_constants")}

def test_the_package_uses_no_private_name_of_ray_or_optuna():
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        for line in path.read_text().splitlines():
            if PRIVATE.search(line) and (path.name, line) not in ALLOWED:
                found.append(f"{path.relative_to(PACKAGE)}: {line.strip()}")
    assert not found, "\n".join(found)


@pytest.mark.usefixtures("ray_session")
def test_a_queued_trial_runs_with_its_queued_values(tmp_path):
    spec = parse_spec({
        "name": "queued",
        "seed": 1,
        "data": {"source": "digits", "max_samples": 200},
        "tasks": {"digit": None, "odd": None},
        "backbone": {"name": "mlp", "options": {"widths": [8, 8]}},
        "families": {"tree": {}, "cross_stitch": {}},
        "train": {"epochs": 1, "lr": {"low": 1e-5, "high": 1e-1, "log": True}, "batch_size": [16, 32]},
        "search": {"sampler": "random", "trials": 8, "concurrency": 2, "export_top": 1, "objective": "per_task", "baselines": False},
    })
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
