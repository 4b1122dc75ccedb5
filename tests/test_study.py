"""Marking and retrying trials a stopped driver left behind, on a real SQLite study."""

import optuna
from optuna.trial import TrialState

from share_search.runs.study import INTERRUPTED, RETRY_OF, ask, enqueue, is_interrupted, mark_interrupted, planned_params, queue_retries


def _study(tmp_path):
    return optuna.create_study(storage=f"sqlite:///{tmp_path / 'study.db'}", study_name="s", sampler=optuna.samplers.RandomSampler(seed=0))


def _sample(trial):
    return {"family": trial.suggest_categorical("family", ["tree", "cross_stitch"]), "lr": trial.suggest_float("lr", 1e-4, 1e-1, log=True)}


def test_retries_repeat_what_each_stopped_trial_had_or_was_queued_with(tmp_path):
    study = _study(tmp_path)
    done = ask(study)
    _sample(done)
    done.set_user_attr("fail_reason", None)  # as the searcher tells a trial
    study.tell(done, 1.0)
    sampled = ask(study)  # asked for every value, then the driver died
    values = _sample(sampled)
    enqueue(study, {"family": "cross_stitch", "lr": 0.0123}, {"role": "hard_sharing"})
    queued = ask(study)  # popped from the queue, killed before it asked for anything
    assert queued.params == {} and queued.user_attrs["role"] == "hard_sharing"
    fresh = ask(study)  # killed before it asked for anything, nothing queued
    assert fresh.params == {}

    stopped = mark_interrupted(study)
    assert [t.number for t in stopped] == [sampled.number, queued.number, fresh.number]
    trials = study.get_trials()
    assert trials[done.number].state == TrialState.COMPLETE
    for n in (sampled.number, queued.number, fresh.number):
        assert trials[n].state == TrialState.FAIL and trials[n].user_attrs["fail_reason"] == INTERRUPTED
    assert planned_params(trials[queued.number]) == {"family": "cross_stitch", "lr": 0.0123}

    assert queue_retries(study) == [sampled.number, queued.number, fresh.number]
    assert queue_retries(study) == []  # a second resume queues nothing twice
    retries = {}
    for _ in range(3):
        t = study.ask()
        _sample(t)
        retries[t.user_attrs[RETRY_OF]] = t
    assert retries[sampled.number].params == values
    assert retries[queued.number].params == {"family": "cross_stitch", "lr": 0.0123}
    assert retries[queued.number].user_attrs["role"] == "hard_sharing"
    assert set(retries[fresh.number].params) == {"family", "lr"}  # sampled anew


def test_planned_params_of_a_finished_trial_are_its_params(tmp_path):
    study = _study(tmp_path)
    enqueue(study, {"family": "tree"})
    t = ask(study)
    params = _sample(t)
    study.tell(t, 0.5)
    assert planned_params(study.trials[0]) == params


def test_a_trial_stopped_between_optunas_ask_and_its_reason_counts_as_interrupted(tmp_path):
    """Ctrl-C may land after Optuna created a trial and before ``ask`` gave it its reason: a
    trial failed with no reason at all counts as interrupted and is retried like the others."""
    study = _study(tmp_path)
    bare = study.ask()  # what ``ask`` does first; the interrupt came before its next line
    assert "fail_reason" not in bare.user_attrs
    assert [t.number for t in mark_interrupted(study)] == [bare.number]
    trial = study.get_trials()[bare.number]
    assert trial.state == TrialState.FAIL and is_interrupted(trial)
    assert queue_retries(study) == [bare.number]
