"""ASHA judges a progressive network only once its last column trains.

A progressive trial trains one column per phase; at the first rung it has trained one
column and the other tasks sit at chance, so its Δm is low for a reason that says nothing
of the architecture. The scheduler's clock (``SCHEDULER_EPOCH``) therefore counts epochs of
the last phase only: the progressive trial meets the first rung in its last column, with
every earlier column finished, next to another family's trial after as many epochs.

A real search: grid sampler, concurrency 1, so a tree reaches the first rung first and the
progressive trial is compared with it (before issue 20 it was stopped there, after its
first epoch).
"""

from __future__ import annotations

import optuna

from share_search.engine.runner import run_search
from share_search.spec.model import parse_spec

EPOCHS = 2  # per phase: a progressive trial over two tasks trains 4 epochs


def test_asha_lets_a_progressive_trial_reach_its_last_column(tmp_path, ray_session):
    spec = parse_spec({
        "name": "asha_progressive", "seed": 0,
        "data": {"source": "digits", "max_samples": 300},
        "tasks": {"digit": None, "odd": None},
        "backbone": {"name": "mlp", "options": {"widths": [16, 16]}},
        "families": {"tree": {}, "progressive": {"order": ["digit", "odd"], "stages": [1], "lateral": "linear"}},
        "train": {"epochs": EPOCHS, "lr": 0.02, "batch_size": 32},
        "search": {"sampler": "grid", "concurrency": 1, "export_top": 1,
                   "scheduler": {"type": "asha", "grace_period": 1, "reduction_factor": 2}},
    })
    outcome = run_search(spec, out=tmp_path / "run", show_progress=False)
    study = optuna.load_study(study_name="asha_progressive", storage=f"sqlite:///{outcome.run_dir / 'study.db'}")
    searched = [t for t in study.trials if "role" not in t.user_attrs]
    assert [t.user_attrs["family"] for t in searched] == ["tree", "progressive"]  # the tree meets the rungs first
    tree, progressive = searched
    assert tree.intermediate_values, "the tree reported to the scheduler"
    # Optuna's steps are Tune's iterations: 1..EPOCHS train the first column, EPOCHS+1.. the
    # last. A step is recorded when the scheduler lets the trial go on after it, so a step
    # EPOCHS means the trial went on to train its last column.
    went_on_after = max(progressive.intermediate_values, default=0)
    assert went_on_after >= EPOCHS, f"the progressive trial was stopped after epoch {went_on_after + 1}, before its last column trained"
    if progressive.state.name == "COMPLETE":
        assert len(progressive.user_attrs["history"]) == 2 * EPOCHS
