"""End to end with real Ray Tune, a real Optuna RDB study and real training on digits."""

import json
import subprocess
import sys
import textwrap

import optuna
import pytest
import torch
from optuna.trial import TrialState
from safetensors.torch import load_file

from share_search.runs.record import TrialRecord
from share_search.arch import config_from_dict
from share_search.engine.runner import run_search
from share_search.spec.model import parse_spec

pytestmark = pytest.mark.usefixtures("ray_session")


@pytest.fixture(scope="module")
def run(small_run):
    """The session's finished digits search (tests/conftest.py) and its study."""
    study = optuna.load_study(study_name="small", storage=f"sqlite:///{small_run.run_dir / 'study.db'}")
    return small_run, study


def _trained(study) -> list:
    """The trials that trained: a re-proposal of a trained architecture (``duplicate_of``) is told its result instead."""
    return [t for t in study.get_trials() if "duplicate_of" not in t.user_attrs]


def test_study_holds_every_trial_complete_with_its_measurements(run):
    outcome, study = run
    trials = _trained(study)
    assert len(trials) == 7
    assert all(t.state == TrialState.COMPLETE for t in trials)
    assert study.metric_names == ["delta_m"]
    assert {t.user_attrs["family"] for t in trials} == {"tree", "cross_stitch", "progressive"}
    for t in trials:
        a = t.user_attrs
        assert set(a["val"]) == {"digit", "odd", "loop"}
        assert set(a["val"]["loop"]) == {"f1"}
        assert a["val.loop"] == a["val"]["loop"]["f1"]  # flat copies: sortable in the dashboard
        assert a["params"] > 0 and a["macs"] > 0 and a["time_s"] > 0
        assert a["arch"].startswith(a["family"] + ":")
        assert config_from_dict(json.loads(a["arch_json"])).summary() == a["arch"]
        assert len(a["history"]) >= 2
        assert t.values[0] == pytest.approx(a["delta_m"])


def test_references_ran_first_and_define_delta_m(run):
    _, study = run
    first, second = study.get_trials()[:2]
    assert first.user_attrs["role"] == "single_task" and first.values == [0.0]
    assert second.user_attrs["role"] == "hard_sharing"
    assert second.user_attrs["arch"].startswith("tree: [digit loop odd]")
    # Δm recomputed by hand from the stored metrics (all three metrics: higher is better)
    base = {"digit": first.user_attrs["val"]["digit"]["accuracy"], "odd": first.user_attrs["val"]["odd"]["accuracy"], "loop": first.user_attrs["val"]["loop"]["f1"]}
    mine = {"digit": second.user_attrs["val"]["digit"]["accuracy"], "odd": second.user_attrs["val"]["odd"]["accuracy"], "loop": second.user_attrs["val"]["loop"]["f1"]}
    expected = 100 / 3 * sum((mine[k] - base[k]) / base[k] for k in base)
    assert second.values[0] == pytest.approx(expected)


def test_intermediate_values_reach_optuna_for_sampled_trials(run):
    _, study = run
    sampled = [t for t in _trained(study) if "role" not in t.user_attrs]
    assert sampled and all(len(t.intermediate_values) >= 2 for t in sampled)


def test_leaderboard_ranks_on_validation(run):
    outcome, _ = run
    board = outcome.board
    assert list(board["rank"][:7]) == list(range(1, 8))
    assert board["delta_m"].is_monotonic_decreasing
    assert (outcome.run_dir / "leaderboard.csv").read_text().startswith("rank,")
    assert not any(c.startswith("test.") for c in board.columns)


def test_checkpoints_live_in_the_run_folder(run):
    outcome, study = run
    markers = list((outcome.run_dir / "ray").glob("*/*/checkpoint_*/trial.json"))
    assert {json.loads(m.read_text())["optuna_trial"] for m in markers} == {t.number for t in _trained(study)}
    # written once per trial, with its final result: Tune numbers a trial's checkpoints from 0,
    # and one per improving epoch would leave a later number behind
    assert {m.parent.name for m in markers} == {"checkpoint_000000"}
    for m in markers:
        marker = json.loads(m.read_text())
        assert marker["epoch"] == study.trials[marker["optuna_trial"]].user_attrs["best_epoch"]


def test_exported_top_model_reloads_with_identical_outputs_in_a_fresh_process(run):
    outcome, study = run
    rank1 = outcome.run_dir / "export" / "rank-1"
    metrics = json.loads((rank1 / "metrics.json").read_text())
    best = outcome.board.iloc[0]
    assert metrics["trial"] == int(best["trial"])
    assert metrics["val"]["digit"]["accuracy"] == pytest.approx(best["val.digit"])  # same weights as the trial's best epoch
    assert set(metrics["test"]) == {"digit", "odd", "loop"}
    example = load_file(str(rank1 / "example.safetensors"))
    code = textwrap.dedent(
        f"""
        import sys, torch
        from safetensors.torch import load_file, save_file
        import share_search as ss
        m = ss.load_model({str(rank1)!r})
        assert not m.training
        ex = load_file({str(rank1 / 'example.safetensors')!r})
        with torch.no_grad():
            out = m(ex["x"])
        save_file({{k: v.contiguous() for k, v in out.items()}}, sys.argv[1])
        """
    )
    out_file = outcome.run_dir / "reloaded.safetensors"
    subprocess.run([sys.executable, "-c", code, str(out_file)], check=True, timeout=120)
    reloaded = load_file(str(out_file))
    for task in ("digit", "odd", "loop"):
        assert torch.equal(reloaded[task], example[f"out.{task}"])


def test_grid_runs_every_tree_exactly_once(tmp_path):
    spec = parse_spec(
        {
            "name": "grid",
            "data": {"source": "digits", "max_samples": 200},
            "tasks": {"digit": None, "odd": None},
            "backbone": {"name": "mlp", "options": {"widths": [8, 8, 8]}},
            "families": {"tree": {}},
            "train": {"epochs": 1},
            "search": {"sampler": "grid", "concurrency": 2, "export_top": 0},
        }
    )
    outcome = run_search(spec, out=tmp_path / "grid", show_progress=False)
    study = optuna.load_study(study_name="grid", storage=f"sqlite:///{tmp_path / 'grid' / 'study.db'}")
    archs = [t.user_attrs["arch"] for t in study.get_trials()]
    # 2 tasks over 3 stages with the first shared: 3 trees; plus the single-task baseline
    assert len(archs) == 4 == len(set(archs))
    assert all(t.state == TrialState.COMPLETE for t in study.get_trials())
    assert outcome.board["rank"].notna().sum() == 4


def test_asha_stopped_trials_are_pruned_never_complete(tmp_path):
    spec = parse_spec(
        {
            "name": "asha",
            "data": {"source": "digits", "max_samples": 200},
            "tasks": {"digit": None, "odd": None},
            "backbone": {"name": "mlp", "options": {"widths": [8, 8]}},
            "families": {"tree": {}, "cross_stitch": {}},
            "train": {"epochs": 6, "lr": {"low": 1e-5, "high": 1e-1, "log": True}},
            "search": {"sampler": "random", "trials": 10, "concurrency": 2, "export_top": 1,
                       "scheduler": {"type": "asha", "grace_period": 1, "reduction_factor": 2}},
        }
    )
    outcome = run_search(spec, out=tmp_path / "asha", show_progress=False)
    study = optuna.load_study(study_name="asha", storage=f"sqlite:///{tmp_path / 'asha' / 'study.db'}")
    trials = study.get_trials()
    pruned = [t for t in trials if t.state == TrialState.PRUNED]
    complete = [t for t in trials if t.state == TrialState.COMPLETE]
    assert len(trials) == 10 and pruned
    for t in pruned:  # Optuna keeps the last intermediate value; the state keeps it off any ranking
        assert t.user_attrs["fail_reason"].startswith("stopped early")
        assert len(t.intermediate_values) < 6
    assert not {t.number for t in pruned} & {t.number for t in study.best_trials}
    assert all(len(t.user_attrs["history"]) == 6 for t in complete if "role" not in t.user_attrs)
    assert all("checkpoint" not in t.user_attrs for t in pruned)
    for t in complete:  # told by the searcher: the reason a trial is asked with ("interrupted") is gone
        assert t.user_attrs["fail_reason"] is None
        record = TrialRecord.from_frozen_trial(t)
        folder = (outcome.run_dir / record.checkpoint).resolve()
        assert folder.is_relative_to(outcome.run_dir / "ray")  # the checkpoint Tune reported, recorded in the study
        marker = json.loads((folder / "trial.json").read_text())
        assert marker["optuna_trial"] == t.number
        assert record.plan.train == marker["plan"]["train"] and record.plan.seed is not None  # export reads the plan here
    assert (outcome.run_dir / "export" / "rank-1" / "weights.safetensors").is_file()


def test_per_task_objectives_with_nsga2(tmp_path):
    spec = parse_spec(
        {
            "name": "moo",
            "data": {"source": "digits", "max_samples": 200},
            "tasks": {"digit": None, "odd": None},
            "backbone": {"name": "mlp", "options": {"widths": [8, 8]}},
            "families": {"tree": {}, "progressive": {}},
            "train": {"epochs": 1},
            "search": {"sampler": "nsga2", "objective": "per_task", "cost": "params", "trials": 5, "concurrency": 2, "export_top": 1},
        }
    )
    outcome = run_search(spec, out=tmp_path / "moo", show_progress=False)
    study = optuna.load_study(study_name="moo", storage=f"sqlite:///{tmp_path / 'moo' / 'study.db'}")
    assert study.metric_names == ["digit.accuracy", "odd.accuracy", "params"]
    assert [d.name for d in study.directions] == ["MAXIMIZE", "MAXIMIZE", "MINIMIZE"]
    for t in study.get_trials(states=(TrialState.COMPLETE,)):
        assert t.values == [t.user_attrs["val"]["digit"]["accuracy"], t.user_attrs["val"]["odd"]["accuracy"], t.user_attrs["params"]]
    assert study.best_trials and len(outcome.exported) == 1
