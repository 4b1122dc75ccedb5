"""The run folder a new run writes into (issue 16, items 7 and 8).

- A folder of the user's that holds no run is refused, not overwritten: every file in it
  stays byte for byte.
- What can be checked before anything is created is checked first (the seed's range, the
  device), so a refused start leaves no folder behind.
- The rule for a start that fails once the folder exists: if no trial completed, what
  the start made is removed (the folder it made, or what it wrote into an empty folder of
  the user's, and its study in a shared storage), the error says why and what was
  removed, and the same command can run again. A run with a completed trial is kept for
  ``--resume`` (tests/test_resume.py).

Only the last two tests start Ray (run it under the shared Ray lock).
"""

from __future__ import annotations

import os
import signal
import sqlite3
import time
import uuid
from pathlib import Path

import optuna
import pytest
import torch

from share_search.cli import main
from share_search.errors import SpecError
from share_search.spec.model import parse_spec
from tests.runs import end_marked, file_tree, one_line_error, running_driver, small_spec, write_spec

MARKER = "SHARE_SEARCH_TEST_MARKER"


# --------------------------------------------------------------------------- item 7: a folder of the user's
USER_FILES = {
    "leaderboard.csv": b"my,own,table\n1,2,3\n",
    "export/rank-1/notes.md": b"# results I wrote by hand\n",
    "study.db": b"not share-search's database",
}


@pytest.mark.parametrize("how", ["--out", "search.out"])
def test_a_folder_of_user_files_is_refused_and_kept_byte_for_byte(tmp_path, capsys, how):
    folder = tmp_path / "results"
    for name, data in USER_FILES.items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_bytes(data)
    if how == "--out":
        spec, args = write_spec(tmp_path / "spec.yaml", small_spec()), ["--out", str(folder)]
    else:
        spec, args = write_spec(tmp_path / "spec.yaml", small_spec(search={"out": str(folder)})), []
    before = file_tree(tmp_path)
    assert main(["run", str(spec), "--quiet", *args]) == 2
    one_line_error(capsys, "--out: a new run needs a new or empty folder", f"{folder} is not empty and holds no run")
    assert file_tree(tmp_path) == before
    assert {name: (folder / name).read_bytes() for name in USER_FILES} == USER_FILES


# --------------------------------------------------------------------------- item 8: refused before anything is made
def test_the_seed_is_bounded_by_what_the_samplers_take():
    assert parse_spec(small_spec(seed=2**32 - 1)).seed == 2**32 - 1
    with pytest.raises(SpecError) as caught:
        parse_spec(small_spec(seed=2**32))
    assert caught.value.path == "seed"


REFUSED = [
    ("seed-above-32-bits", small_spec(seed=2**32), ["seed: ", "4294967295", "4294967296"]),
    ("cuda-without-a-gpu", small_spec(train={"device": "cuda"}), ["train.device: 'cuda'", "no CUDA device"]),
]


@pytest.mark.parametrize("spec,words", [c[1:] for c in REFUSED], ids=[c[0] for c in REFUSED])
def test_a_start_that_cannot_succeed_creates_nothing(tmp_path, capsys, spec, words):
    if spec["train"].get("device") == "cuda" and torch.cuda.is_available():
        pytest.skip("this machine has a CUDA device, so 'cuda' is a valid choice here")
    path = write_spec(tmp_path / "spec.yaml", spec)
    out = tmp_path / "runs" / "small"
    before = file_tree(tmp_path)
    assert main(["run", str(path), "--out", str(out), "--quiet"]) == 2
    err = one_line_error(capsys, *words)
    assert "--resume" not in err
    assert not (tmp_path / "runs").exists()
    assert file_tree(tmp_path) == before


# --------------------------------------------------------------------------- item 8: a start that fails once made (Ray)
def _failing_references(storage: str | None = None) -> dict:
    """Every trial raises in its first batch, the single-task references included."""
    search = {"trials": 2, "export_top": 0, **({"storage": storage} if storage else {})}
    return small_spec(
        backbone={"name": "tests.fault_backbones:faulty", "options": {"widths": [16], "faults": {32: "raise"}}},
        train={"batch_size": 32}, families={"tree": {}}, search=search,
    )


@pytest.mark.parametrize("where", ["new-folder", "empty-user-folder", "shared-storage"])
def test_a_start_with_no_completed_trial_leaves_nothing_and_runs_again(tmp_path, ray_session, capsys, where):
    storage = f"sqlite:///{tmp_path / 'shared.db'}" if where == "shared-storage" else None
    bad = write_spec(tmp_path / "bad.yaml", _failing_references(storage))
    if where == "empty-user-folder":
        out = tmp_path / "mine"
        out.mkdir()
    else:
        out = tmp_path / "made" / "by" / "run"
    if storage:  # the shared database holds another study that must survive
        optuna.create_study(study_name="someone-else", storage=storage)

    assert main(["run", str(bad), "--out", str(out), "--quiet"]) == 2
    err = one_line_error(capsys, "the single-task baseline trial did not complete", "planted fault for batch size 32", "nothing was kept")
    assert "--resume" not in err
    if where == "empty-user-folder":
        assert out.is_dir() and not any(out.iterdir())  # the user's folder stays, as empty as it was
    else:
        assert not (tmp_path / "made").exists()  # every folder the start made is gone
    if storage:
        assert [s.study_name for s in optuna.get_all_study_summaries(storage)] == ["someone-else"]

    # the same folder (and study name) takes a fixed spec at once, without --resume; for a
    # folder the start made, that is any new run's start: the folder is gone (checked above)
    if where == "new-folder":
        return
    good = _failing_references(storage)
    good["backbone"]["options"]["faults"] = {}
    assert main(["run", str(write_spec(tmp_path / "good.yaml", good)), "--out", str(out), "--quiet"]) == 0, capsys.readouterr()
    assert (out / "spec.resolved.yaml").is_file()


def test_ctrl_c_before_any_trial_completed_leaves_nothing(tmp_path):
    """Ctrl-C (SIGINT to the driver's process group, as a terminal sends it) while the
    first, slow trials train: exit 130, the message says nothing was kept, no folder."""
    spec = small_spec(backbone={"name": "tests.fault_backbones:faulty", "options": {"widths": [16], "delay": 1.0}})
    path = write_spec(tmp_path / "slow.yaml", spec)
    out = tmp_path / "made" / "run"
    marker = uuid.uuid4().hex
    try:
        with running_driver(["run", str(path), "--out", str(out), "--quiet"], tmp_path / "driver.log", {MARKER: marker}) as proc:
            _wait_for_a_running_trial(proc, out)
            os.killpg(proc.pid, signal.SIGINT)
            code = proc.wait(timeout=300)
    finally:
        end_marked(f"{MARKER}={marker}")  # any Ray process the driver left behind
    output = (tmp_path / "driver.log").read_text()
    assert code == 130, output
    assert "interrupted; no trial completed, so nothing was kept" in output and "--resume" not in output, output
    assert not (tmp_path / "made").exists()


def _wait_for_a_running_trial(proc, run_dir: Path, timeout: float = 600.0) -> None:
    """Block until the study holds a running trial and no completed one."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, "the driver ended before it could be interrupted"
        if (run_dir / "spec.resolved.yaml").exists():
            try:
                with sqlite3.connect(f"file:{run_dir / 'study.db'}?mode=ro", uri=True, timeout=5) as con:
                    states = [s for (s,) in con.execute("SELECT state FROM trials")]
            except sqlite3.OperationalError:
                states = []
            assert "COMPLETE" not in states, "a trial completed before the driver could be interrupted"
            if "RUNNING" in states:
                return
        time.sleep(0.2)
    raise AssertionError(f"no running trial after {timeout} s")
