"""The public Python API: ``share_search.run``, ``open_run`` and the ``Run`` they return.

Most checks read a run folder made without Ray (``tests/security/study_only_run.py``); the
last ones run real searches through ``share_search.run`` (they start Ray: run this file
under the shared Ray lock).
"""

from __future__ import annotations

import optuna
import pandas as pd
import pytest

import share_search
from share_search.runs.study import finished_trials
from share_search import Run, RunError, ShareSearchError, SpecError, open_run
from share_search.cli import main
from tests.runs import file_tree, small_spec, write_spec
from tests.security.study_only_run import copy_run, make_run, tamper


@pytest.fixture(scope="module")
def template(tmp_path_factory):
    return make_run(tmp_path_factory.mktemp("template") / "small")


@pytest.fixture
def run_dir(template, tmp_path):
    return copy_run(template, tmp_path / "small")


# --------------------------------------------------------------------------- opening a run
def test_open_run_gives_the_folder_its_spec_and_study(run_dir):
    run = share_search.open_run(run_dir)
    assert isinstance(run, Run) and run.path == run_dir.resolve()
    assert isinstance(run.study, optuna.Study) and run.study.study_name == "small" and len(finished_trials(run.study)) == 4
    assert isinstance(run.spec, share_search.Spec) and run.spec.name == "small"
    assert run.task_names == ["digit", "odd"]
    assert repr(run) == f"Run({str(run_dir.resolve())!r}, study='small')"


def test_open_run_refuses_a_missing_folder_and_a_folder_that_is_no_run(tmp_path):
    with pytest.raises(RunError, match="no such run folder"):
        open_run(tmp_path / "nothing")
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("mine")
    with pytest.raises(RunError, match=r"is not a run folder \(no spec.resolved.yaml\)") as caught:
        open_run(tmp_path / "mine")
    assert isinstance(caught.value, ShareSearchError) and "\n" not in str(caught.value)
    assert (tmp_path / "mine" / "notes.txt").read_text() == "mine"


# --------------------------------------------------------------------------- reading it
def test_the_leaderboard_is_the_commands_leaderboard(run_dir, capsys):
    """One path: ``share-search leaderboard`` prints what ``Run.leaderboard`` returns."""
    run = open_run(run_dir)
    for options, args in (({}, []), ({"rank_by": "odd"}, ["--rank-by", "odd"]), ({"rank_by": "pareto", "budget": "params<=1000"}, ["--rank-by", "pareto", "--budget", "params<=1000"])):
        board = run.leaderboard(**options)
        assert isinstance(board, pd.DataFrame) and board.attrs["rank_by"] == options.get("rank_by", "delta_m")
        capsys.readouterr()
        assert main(["leaderboard", str(run_dir), "--format", "csv", *args]) == 0
        assert capsys.readouterr().out == board.to_csv(index=False)
    assert run.leaderboard()["trial"].tolist()[0] == 1  # digit 0.84, odd 0.91: the best Δm of the made trials
    assert run.leaderboard(rank_by="odd")["trial"].tolist()[0] == 2  # odd 0.93


def test_bad_ranking_options_are_one_line_errors(run_dir):
    run = open_run(run_dir)
    with pytest.raises(ShareSearchError, match="`rank_by` must be one of"):
        run.leaderboard(rank_by="colour")
    with pytest.raises(ShareSearchError, match="a budget must read `params<=N` or `macs<=N`"):
        run.leaderboard(budget="params<=lots")


def test_failures_lists_the_failed_trials_with_their_reason(run_dir):
    assert open_run(run_dir).failures().empty
    study = open_run(run_dir).study
    study.add_trial(optuna.trial.create_trial(state=optuna.trial.TrialState.FAIL, user_attrs={"family": "tree", "arch": "tree: x", "fail_reason": "RuntimeError: boom"}))
    failures = open_run(run_dir).failures()
    assert failures.to_dict("records") == [{"trial": 4, "family": "tree", "arch": "tree: x", "fail_reason": "RuntimeError: boom"}]


def test_report_writes_the_html_report(run_dir, tmp_path):
    run = open_run(run_dir)
    assert run.report() == run_dir.resolve() / "report.html"
    assert "<title>share-search report: " in (run_dir / "report.html").read_text()
    out = run.report(tmp_path / "elsewhere" / "r.html", top=1)
    assert out == tmp_path / "elsewhere" / "r.html" and out.is_file()
    with pytest.raises(RunError, match="top must be an integer >= 1, got 0"):
        run.report(top=0)


def test_export_runs_no_code_the_folder_names_unless_trusted(run_dir, tmp_path, monkeypatch):
    """A run folder from elsewhere naming a module: export refuses before importing it."""
    (tmp_path / "evilmod.py").write_text("from pathlib import Path\nPath(__file__).with_name('evil-ran').write_text('imported')\n")
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    tamper(run_dir, "backbone.name", "evilmod:boom")
    before = file_tree(run_dir)
    with pytest.raises(ShareSearchError, match=r"names code that export would import and run \(backbone.name 'evilmod:boom'\); pass trust_code=True"):
        open_run(run_dir).export()
    assert not (tmp_path / "evil-ran").exists() and file_tree(run_dir) == before
    with pytest.raises(RunError, match="top must be an integer >= 1, got 0"):
        open_run(run_dir).export(top=0)


# --------------------------------------------------------------------------- starting a run: bad input, before Ray
def test_run_refuses_what_is_not_a_spec(tmp_path):
    with pytest.raises(SpecError, match="a spec is a YAML file's path, a Spec or a dict of its sections, got int"):
        share_search.run(3, out=tmp_path / "r")
    with pytest.raises(SpecError, match="spec file not found"):
        share_search.run(tmp_path / "missing.yaml", out=tmp_path / "r")
    with pytest.raises(SpecError, match=r"^tasks.odd.metric: unknown metric 'acuracy'"):
        share_search.run(small_spec(tasks={"odd": {"metric": "acuracy"}}), out=tmp_path / "r")
    with pytest.raises(SpecError, match="search.trials"):
        share_search.run(small_spec(), out=tmp_path / "r", trials=0)
    assert not (tmp_path / "r").exists()


def test_run_refuses_a_folder_of_yours_and_changes_nothing(tmp_path):
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("mine")
    with pytest.raises(RunError, match="a new run needs a new or empty folder"):
        share_search.run(small_spec(), out=tmp_path / "mine")
    assert file_tree(tmp_path / "mine") == {"notes.txt": b"mine"}


# --------------------------------------------------------------------------- real searches (Ray)
def test_run_searches_and_returns_the_run(ray_session, tmp_path, capfd, recwarn):
    """From a dict: the keywords reach the search; the run reads back as ``open_run`` reads it,
    exports load, and ``resume`` continues the same study. Optuna's info lines and
    experimental warnings stay inside, and the caller's Optuna verbosity is left as it was."""
    optuna.logging.set_verbosity(optuna.logging.INFO)
    run = share_search.run(small_spec(), out=tmp_path / "r", trials=3, concurrency=1, sampler="random", quiet=True)
    assert optuna.logging.get_verbosity() == optuna.logging.INFO
    assert "A new study created" not in capfd.readouterr().err
    assert not [w for w in recwarn if issubclass(w.category, optuna.exceptions.ExperimentalWarning)]
    assert isinstance(run, Run) and run.path == (tmp_path / "r").resolve()
    assert len(finished_trials(run.study)) == 3 and run.spec.search.trials == 3 and run.spec.search.concurrency == 1
    board = run.leaderboard()
    assert board["state"].tolist() == ["COMPLETE"] * 3 and board["rank"].tolist() == [1, 2, 3]
    pd.testing.assert_frame_equal(open_run(run.path).leaderboard(), board)
    assert run.failures().empty

    exported = run.export(top=2)
    assert exported == [run.path / "export" / "rank-1", run.path / "export" / "rank-2"]
    model = share_search.load_model(exported[0])
    assert model.recipe["arch"]["family"] == board.loc[0, "family"]

    # a ``Spec`` is taken as it is: here it continues the run the dict started
    resumed = share_search.run(share_search.parse_spec(small_spec()), out=tmp_path / "r", trials=4, concurrency=1, sampler="random", resume=True, quiet=True)
    assert len(finished_trials(resumed.study)) == 4 and resumed.path == run.path
    assert [t.state.name for t in finished_trials(resumed.study)] == ["COMPLETE"] * 4


def test_run_reads_a_spec_file(ray_session, tmp_path):
    """A YAML file's relative data path starts from its folder (a ``Spec``: the resume of
    ``test_run_searches_and_returns_the_run``)."""
    import numpy as np
    from sklearn.datasets import load_digits

    digits = load_digits()
    (tmp_path / "spaces").mkdir()
    np.savez(tmp_path / "spaces" / "digits.npz", x=digits.data[:300].astype("float32"), digit=digits.target[:300], odd=digits.target[:300] % 2)
    path = write_spec(tmp_path / "spaces" / "s.yaml", small_spec(data={"source": "digits.npz", "max_samples": None}))
    run = share_search.run(str(path), out=tmp_path / "from-file", trials=2, quiet=True)
    assert run.spec.data.source == str(tmp_path / "spaces" / "digits.npz") and len(finished_trials(run.study)) == 2
    assert [t.state.name for t in finished_trials(run.study)] == ["COMPLETE", "COMPLETE"]
