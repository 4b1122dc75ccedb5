"""Ctrl-C that lands just after a statement of an Optuna write (inside SQLAlchemy's execute,
where Python delivers the signal) leaves SQLite's write lock with the connection, which the
KeyboardInterrupt's traceback keeps alive; marking the stopped trials then failed with
"database is locked". The runner frees those frames first (``_free_interrupted_frames``).
Real Optuna, real SQLAlchemy, a real SQLite file; the interrupt is raised where a signal
would surface: right after the DBAPI call returns."""

from __future__ import annotations

import optuna
import pytest
from optuna.trial import TrialState

from share_search.engine.runner import _free_interrupted_frames
from share_search.runs.study import mark_interrupted


def _interrupted_write(tmp_path, at: int):
    """A study with a RUNNING trial whose write was interrupted after its ``at``-th statement;
    returns the study and the KeyboardInterrupt, its traceback alive."""
    storage = optuna.storages.RDBStorage(f"sqlite:///{tmp_path / 'study.db'}", engine_kwargs={"connect_args": {"timeout": 1}})
    study = optuna.create_study(storage=storage, study_name="s")
    trial = study.ask()
    dialect = storage.engine.dialect
    execute = dialect.do_execute
    count = {"n": 0}

    def interrupt_after(cursor, statement, parameters, context=None):
        execute(cursor, statement, parameters, context)
        count["n"] += 1
        if count["n"] == at:
            raise KeyboardInterrupt

    dialect.do_execute = interrupt_after
    try:
        trial.suggest_float("lr", 1e-4, 1e-1, log=True)
    except KeyboardInterrupt as stop:
        dialect.do_execute = execute
        return study, stop
    raise AssertionError("the write was not interrupted")


@pytest.mark.parametrize("at", [1, 2])
def test_the_stopped_trials_are_marked_after_ctrl_c_inside_a_write(tmp_path, at):
    study, stop = _interrupted_write(tmp_path, at)
    with pytest.raises(optuna.exceptions.StorageInternalError):  # the lock the interrupted write keeps
        mark_interrupted(study)
    _free_interrupted_frames(stop)
    left = mark_interrupted(study)
    assert [t.state for t in left] == [TrialState.FAIL]
