"""Study storage on real engines: a search whose study lives in PostgreSQL, and SQLite's
busy timeout keeping a run's writes alive while a reader (the dashboard) holds the file.

PostgreSQL: ``SHARE_SEARCH_TEST_POSTGRES`` (default below; ``.ci/run`` starts that server on
127.0.0.1). Without a server the test skips locally and fails under CI.
"""

import os
import sqlite3
import threading
import uuid

import optuna
import pandas as pd
import pytest
from optuna.trial import TrialState

from share_search.runs.study import finished_trials
from share_search.cli import main
from share_search.runs.study import SQLITE_TIMEOUT_S, hide_password, open_storage
from tests.runs import small_spec, write_spec

URL = os.environ.get("SHARE_SEARCH_TEST_POSTGRES", "postgresql+psycopg2://share:share@127.0.0.1:5432/share_search")


@pytest.fixture
def postgres():
    import sqlalchemy

    try:
        with sqlalchemy.create_engine(URL, connect_args={"connect_timeout": 5}).connect():
            pass
    except Exception as exc:
        if os.environ.get("CI"):
            pytest.fail(f"CI is set but PostgreSQL at {URL} cannot be reached ({exc}); .ci/run starts it")
        pytest.skip(f"no PostgreSQL at {URL} ({type(exc).__name__})")
    return URL


def test_a_search_keeps_its_study_in_postgresql(tmp_path, postgres, ray_session, capsys, monkeypatch):
    name = f"pg-{uuid.uuid4().hex[:8]}"
    search = {"trials": 3, "storage": postgres, "baselines": False, "objective": "per_task"}  # one Tuner phase: short
    spec = small_spec(name=name, search=search)
    path = write_spec(tmp_path / "pg.yaml", spec)
    run_dir = tmp_path / "run"
    try:
        assert main(["run", str(path), "--out", str(run_dir), "--quiet"]) == 0, capsys.readouterr()
        study = optuna.load_study(study_name=name, storage=postgres)
        trials = finished_trials(study)  # trained trials: a re-proposal is told, not retrained
        assert [t.state for t in trials] == [TrialState.COMPLETE] * 3
        assert all(t.user_attrs["val"]["digit"]["accuracy"] > 0 for t in trials)
        assert study.user_attrs["spec"]["search"]["storage"] == hide_password(postgres)  # the password is never stored
        assert not (run_dir / "study.db").exists()  # nothing fell back to SQLite
        assert (run_dir / "export" / "rank-1" / "weights.safetensors").is_file()

        # the leaderboard command finds the study through the run folder's resolved spec, and
        # the password that spec lacks through SHARE_SEARCH_STORAGE
        capsys.readouterr()
        monkeypatch.setenv("SHARE_SEARCH_STORAGE", postgres)
        assert main(["leaderboard", str(run_dir), "--format", "csv", "--output", str(tmp_path / "board.csv")]) == 0
        board = pd.read_csv(tmp_path / "board.csv")
        assert sorted(board["trial"]) == [t.number for t in trials]

        # the same study name in the same database: refused, with the password hidden, nothing written
        again = tmp_path / "again"
        assert main(["run", str(path), "--out", str(again), "--quiet"]) == 2
        err = capsys.readouterr().err
        assert f"study {name!r} already exists in postgresql+psycopg2://share:***@" in err and "--resume" in err
        assert "share:share@" not in err
        assert not again.exists()
    finally:
        try:
            optuna.delete_study(study_name=name, storage=postgres)
        except KeyError:
            pass


def _hold_read_lock(db, started: threading.Event, release: threading.Event):
    """What a dashboard's long read does: a read transaction holding SQLite's shared lock."""
    con = sqlite3.connect(db, isolation_level=None)
    try:
        con.execute("BEGIN")
        con.execute("SELECT * FROM trials").fetchall()
        started.set()
        release.wait(10)
        con.execute("COMMIT")
    finally:
        con.close()


@pytest.mark.parametrize("timeout_s", [SQLITE_TIMEOUT_S, 0.05])
def test_sqlite_busy_timeout_outlasts_a_reader(tmp_path, timeout_s):
    """With the run's busy timeout a write waits for the reader; with a tiny one it breaks."""
    db = tmp_path / "study.db"
    url = f"sqlite:///{db}"
    study = optuna.create_study(study_name="s", storage=open_storage(url))
    study.enqueue_trial({"x": 1.0})
    if timeout_s == SQLITE_TIMEOUT_S:
        storage = open_storage(url)
    else:
        storage = optuna.storages.RDBStorage(url, engine_kwargs={"connect_args": {"timeout": timeout_s}})
    writer = optuna.load_study(study_name="s", storage=storage)
    started, release = threading.Event(), threading.Event()
    reader = threading.Thread(target=_hold_read_lock, args=(str(db), started, release))
    reader.start()
    started.wait(10)
    timer = threading.Timer(1.0, release.set)  # the reader finishes while the write waits
    timer.start()
    try:
        if timeout_s == SQLITE_TIMEOUT_S:
            writer.set_user_attr("written", True)
            assert optuna.load_study(study_name="s", storage=url).user_attrs["written"] is True
        else:
            with pytest.raises(optuna.exceptions.StorageInternalError) as info:
                writer.set_user_attr("written", True)
            assert "database is locked" in str(info.value.__cause__)
    finally:
        release.set()
        timer.cancel()
        reader.join()
