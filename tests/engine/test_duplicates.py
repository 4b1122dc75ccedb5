"""Re-proposed architectures are not retrained: a sampled trial whose values equal those of a
trial that trained and ended COMPLETE or PRUNED is told that trial's result, takes no Ray
trial, is left off the leaderboard and exports, and does not count against ``search.trials``;
a sampler that proposes only such trials ends the search (Optuna's FAQ, "How can I ignore
duplicated samples?"). Real searches on digits with spaces of one to three trees.

Run these under the shared Ray lock (``flock /tmp/share-search-ray.lock``).
"""

from __future__ import annotations

from pathlib import Path

import optuna
import pandas as pd
import pytest
from optuna.trial import TrialState

from share_search.cli import main
from share_search.engine.search import run_phase
from share_search.runs.study import ask, create_or_load_study, enqueue, finished_trials, is_interrupted, open_storage, planned_params, storage_url, unretried_interrupted
from share_search.space.spaces import SpaceFunction
from share_search.spec.model import parse_spec
from share_search.train.problem import load_problem
from tests.runs import ray_trial_folders, small_spec, study_of, write_spec

TRIALS = 6  # above the space: 3 trees, each trained once as a reference or a searched trial, or both
DUPLICATE_LIMIT = 50  # re-proposals in a row that end a phase: max(50, search.trials), as the README states


def _ray_trials(run_dir: Path) -> list[Path]:
    """Every Ray Tune trial folder of the run, over all its phases."""
    if not (run_dir / "ray").is_dir():
        return []
    return [p for phase in (run_dir / "ray").iterdir() if phase.is_dir() for p in ray_trial_folders(phase)]


@pytest.fixture(scope="module")
def three_trees(ray_session, tmp_path_factory):
    """Two tasks, a two-stage MLP, trees whose first stage may split: three trees (the
    single-task networks, hard sharing, one split after stage 0), six trials asked for: the
    two references and at most three distinct searched trials (a re-proposal of a reference
    is trained once as a searched trial: references are no twins)."""
    folder = tmp_path_factory.mktemp("duplicates")
    spec = write_spec(folder / "s.yaml", small_spec(
        name="dup", backbone={"name": "mlp", "options": {"widths": [16, 16]}}, families={"tree": {"first_stage_shared": False}},
        search={"sampler": "random", "trials": TRIALS, "concurrency": 1, "export_top": 3},
    ))
    return spec, folder / "run"


def test_a_space_smaller_than_the_trials_trains_each_architecture_once_and_ends(three_trees, capsys):
    spec, run_dir = three_trees
    assert main(["run", str(spec), "--out", str(run_dir), "--quiet"]) == 0
    out = capsys.readouterr().out
    trials = study_of(run_dir, "dup").get_trials()
    trained = [t for t in trials if "duplicate_of" not in t.user_attrs]
    duplicates = [t for t in trials if "duplicate_of" in t.user_attrs]
    searched = {t.number: t for t in trained if not t.user_attrs.get("role")}
    # every tree searched once, as one Ray trial each (and the two references); the rest were re-proposals, told, not trained
    assert len(trained) == 5 and len(searched) == 3 and len({t.user_attrs["arch"] for t in searched.values()}) == 3
    assert len(_ray_trials(run_dir)) == 5
    assert len(duplicates) >= DUPLICATE_LIMIT
    by_number = {t.number: t for t in trained}
    for t in duplicates:
        twin = searched[t.user_attrs["duplicate_of"]]
        assert t.number > twin.number and planned_params(t) == planned_params(twin)
        assert t.state == twin.state and t.values == twin.values
        assert t.user_attrs["arch"] == twin.user_attrs["arch"] and t.user_attrs["fail_reason"] is None
        assert "checkpoint" not in t.user_attrs
    # they cost nothing, so they do not count against search.trials
    assert [t.number for t in finished_trials(study_of(run_dir, "dup"))] == sorted(by_number)
    # the leaderboard and exports show each trained trial once, and no re-proposal
    board = pd.read_csv(run_dir / "leaderboard.csv")
    assert sorted(board["trial"]) == sorted(by_number) and board[board["role"].fillna("") == ""]["arch"].is_unique
    assert len(list((run_dir / "export").glob("rank-*"))) == 3
    # the guard ended the search: exit 0 above, a line in the summary and in run.log
    assert "search ended early: the sampler proposed only architectures already trained" in out
    assert f"re-proposals: {len(duplicates)} architectures proposed again, not retrained" in out
    log = (run_dir / "run.log").read_text()
    assert "search ended early: the sampler proposed only architectures already trained" in log
    assert f"{len(duplicates)} re-proposed architectures not retrained" in log


def test_a_resumed_run_counts_only_trained_trials(three_trees, capsys):
    spec, run_dir = three_trees
    before = study_of(run_dir, "dup").get_trials()
    assert main(["run", str(spec), "--out", str(run_dir), "--quiet", "--resume"]) == 0
    assert "search ended early" in capsys.readouterr().out
    after = study_of(run_dir, "dup").get_trials()
    assert len(_ray_trials(run_dir)) == 5  # nothing new to train: the sampler found nothing new again
    assert len(after) > len(before) and all("duplicate_of" in t.user_attrs for t in after[len(before):])
    assert len(finished_trials(study_of(run_dir, "dup"))) == 5


# --------------------------------------------------------------------------- one tree, run_phase on a real study
def _one_tree(tmp_path, objective: str, concurrency: int = 1, lr: float = 0.01):
    """Two tasks on one stage that the tree family keeps shared: a space of one tree (hard sharing)."""
    spec = parse_spec(small_spec(
        name="one", families={"tree": {}}, train={"lr": lr},
        search={"sampler": "random", "trials": 3, "concurrency": concurrency, "baselines": objective == "delta_m", "objective": objective},
    ))
    problem = load_problem(spec)
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    storage = open_storage(storage_url(spec, run_dir))
    return problem, run_dir, storage, create_or_load_study(spec, problem, storage, resume=False)


def _ended_by_hand(study, problem, state: TrialState, curve=(0.3, 0.4)) -> optuna.trial.FrozenTrial:
    """The space's one tree, asked and sampled as the searcher does, ended with ``state``."""
    trial = ask(study)
    SpaceFunction(problem)(trial)
    trial.set_user_attr("arch", "by hand")
    trial.set_user_attr("fail_reason", f"{state.name.lower()} by hand")
    for step, value in enumerate(curve, start=1):
        trial.report(value, step)
    study.tell(trial, None, state=state)
    return study.trials[trial.number]


def test_a_re_proposal_of_a_pruned_trial_is_told_pruned_and_a_phase_of_only_re_proposals_ends(tmp_path, ray_session):
    problem, run_dir, storage, study = _one_tree(tmp_path, "delta_m")  # one objective: Optuna keeps intermediate values
    pruned = _ended_by_hand(study, problem, TrialState.PRUNED)
    baseline = {0: {"digit": {"accuracy": 0.5}, "odd": {"accuracy": 0.5}}}
    outcome = run_phase(study, problem, storage, run_dir, "dup", 3, baseline, True, False)
    assert outcome.counts["duplicates"] == DUPLICATE_LIMIT and outcome.counts["exhausted"] == 1
    assert outcome.counts["complete"] == outcome.counts["pruned"] == outcome.counts["failed"] == 0
    rest = study.get_trials()[1:]
    assert len(rest) == DUPLICATE_LIMIT and not _ray_trials(run_dir)
    for t in rest:
        assert t.state == TrialState.PRUNED and t.user_attrs["duplicate_of"] == pruned.number
        assert t.intermediate_values == pruned.intermediate_values and t.params == pruned.params


def test_queued_trials_and_re_proposals_of_a_failed_trial_are_trained(tmp_path, ray_session):
    problem, run_dir, storage, study = _one_tree(tmp_path, "per_task")
    failed = _ended_by_hand(study, problem, TrialState.FAIL, curve=())  # two objectives: no intermediate values
    outcome = run_phase(study, problem, storage, run_dir, "failed-twin", 1, None, False, False)
    assert outcome.counts["complete"] == 1 and outcome.counts["duplicates"] == 0  # a failure may be transient
    retrained = study.trials[-1]
    assert retrained.params == failed.params and retrained.state == TrialState.COMPLETE and "duplicate_of" not in retrained.user_attrs
    enqueue(study, dict(failed.params))  # queued with a trained tree's values: queued trials are always trained
    outcome = run_phase(study, problem, storage, run_dir, "queued", 1, None, False, False)
    assert outcome.counts["complete"] == 1 and outcome.counts["duplicates"] == 0
    assert len(_ray_trials(run_dir)) == 2


def test_a_re_proposal_of_a_trial_still_training_waits_for_it_and_is_told_its_result(tmp_path, ray_session):
    """With two trials at once, the sampler re-proposes the one tree while it trains: those
    re-proposals are not trained beside it but told its result when it ends, so what is trained
    does not depend on which trial finished first (same spec, same leaderboard)."""
    problem, run_dir, storage, study = _one_tree(tmp_path, "delta_m", concurrency=2)
    baseline = {0: {"digit": {"accuracy": 0.5}, "odd": {"accuracy": 0.5}}}
    outcome = run_phase(study, problem, storage, run_dir, "deferred", 3, baseline, False, False)
    trials = study.get_trials()
    twin, rest = trials[0], trials[1:]
    assert twin.state == TrialState.COMPLETE and "duplicate_of" not in twin.user_attrs
    assert len(_ray_trials(run_dir)) == 1 and outcome.counts["complete"] == 1
    assert outcome.counts["duplicates"] == len(rest) == DUPLICATE_LIMIT and outcome.counts["exhausted"] == 1
    for t in rest:
        assert t.user_attrs["duplicate_of"] == twin.number and t.state == TrialState.COMPLETE and t.values == twin.values
    assert any(t.datetime_start < twin.datetime_complete for t in rest)  # asked while the twin trained, told after it
    assert [t.number for t in finished_trials(study)] == [twin.number]


def test_when_a_trial_still_training_fails_its_first_re_proposal_is_trained_instead(tmp_path, ray_session):
    """A learning rate of 1e30 makes every training fail (NaN loss). Re-proposals asked while
    the tree trained wait for it; when it fails, the first of them is trained, as it would have
    been had it been asked after the failure, and the others wait for that one. The phase's two
    Tune trials spent, a re-proposal left untrained is interrupted (trained on --resume) and
    the rest are not retried: they re-propose it."""
    problem, run_dir, storage, study = _one_tree(tmp_path, "per_task", concurrency=2, lr=1e30)
    run_phase(study, problem, storage, run_dir, "failing", 2, None, False, False)
    trials = study.get_trials()
    assert len(_ray_trials(run_dir)) == 2
    assert [t.state for t in trials[:2]] == [TrialState.FAIL] * 2 and not is_interrupted(trials[0]) and not is_interrupted(trials[1])
    assert all(t.user_attrs.get("duplicate_of") is None for t in trials[:2])
    assert all(is_interrupted(t) for t in trials[2:])
    assert {t.number for t in unretried_interrupted(study)} <= {2}
    assert all(t.user_attrs["duplicate_of"] == 2 for t in trials[3:])


def test_re_proposals_waiting_for_a_trial_that_waits_for_the_baseline_do_not_stall_the_phase(tmp_path, ray_session):
    """No baseline comes (none is known and no single-task trial runs): the tree trains, then
    waits to be told; its re-proposals reach the limit while it waits. The phase ends (it
    must not wait for a twin whose training is over), the tree fails for the missing
    baseline, and its re-proposals are left to --resume as for a failed twin."""
    problem, run_dir, storage, study = _one_tree(tmp_path, "delta_m", concurrency=2)
    outcome = run_phase(study, problem, storage, run_dir, "no-baseline", 3, None, False, False)
    trials = study.get_trials()
    assert len(_ray_trials(run_dir)) == 1 and outcome.counts["failed"] == 1 and outcome.counts["exhausted"] == 1
    assert trials[0].state == TrialState.FAIL and "baseline did not finish" in trials[0].user_attrs["fail_reason"]
    assert len(trials) == 1 + DUPLICATE_LIMIT and all(is_interrupted(t) for t in trials[1:])
    assert [t.number for t in unretried_interrupted(study)] == [1]  # the first trains on --resume; the rest re-propose it
