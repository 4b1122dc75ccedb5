"""Mistakes that used to end in a traceback (issue 16, item 10): an output path under a
file, in a place that cannot be written or naming a folder, and the user's own
``module:function`` raising. Each is one line naming the flag, key or function, exit code
2, no traceback (``--debug`` keeps it), and nothing written.

No Ray: every one of them is caught before a search would start.
"""

from __future__ import annotations

import os
import uuid
import warnings
from pathlib import Path

import pytest

from share_search.cli import main
from share_search.errors import ShareSearchError
from share_search.train.problem import load_problem
from share_search.spec.model import parse_spec
from share_search.runs.study import create_or_load_study, open_storage, storage_url
from tests.runs import file_tree, one_line_error, small_spec, write_spec


def _unwritable_folder(tmp_path: Path) -> Path:
    """A folder this process cannot create entries in: a read-only one, or, for root (whom
    permission bits do not stop), sysfs, where nobody may make folders."""
    if os.geteuid() != 0:
        folder = tmp_path / "read-only"
        folder.mkdir()
        folder.chmod(0o555)
        return folder
    if not Path("/sys/kernel").is_dir():
        pytest.skip("running as root and no sysfs to stand for an unwritable place")
    return Path("/sys/kernel")


# --------------------------------------------------------------------------- run --out
def test_out_under_a_file_names_out_and_writes_nothing(tmp_path, capsys):
    spec = write_spec(tmp_path / "spec.yaml", small_spec())
    blocker = tmp_path / "notes.txt"
    blocker.write_text("my notes\n")
    before = file_tree(tmp_path)
    assert main(["run", str(spec), "--out", str(blocker / "run"), "--quiet"]) == 2
    one_line_error(capsys, "--out: ", f"{blocker} is not a folder")
    assert file_tree(tmp_path) == before


def test_out_in_an_unwritable_place_names_out(tmp_path, capsys):
    spec = write_spec(tmp_path / "spec.yaml", small_spec())
    place = _unwritable_folder(tmp_path)
    out = place / f"run-{uuid.uuid4().hex[:8]}" / "deeper"
    before = file_tree(tmp_path)
    assert main(["run", str(spec), "--out", str(out), "--quiet"]) == 2
    one_line_error(capsys, "--out: ", f"no write access to {place}")
    assert not out.parent.exists()
    assert file_tree(tmp_path) == before


# --------------------------------------------------------------------------- the user's module:function
USER_MODULE = '''
def load(**options):
    raise ValueError("cannot parse row 7 of my.csv\\nsecond line of the message")


def backbone(input_shape, **options):
    raise KeyError("no layer named 'conv9'")
'''


@pytest.fixture
def user_module(tmp_path, monkeypatch):
    """A module of the user's, importable (as from their project folder), whose functions raise."""
    name = f"user_code_{uuid.uuid4().hex[:8]}"
    (tmp_path / f"{name}.py").write_text(USER_MODULE)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.chdir(tmp_path)
    return name


@pytest.mark.parametrize("command", ["validate", "run"])
def test_a_raising_data_source_is_one_line(tmp_path, capsys, user_module, command):
    source = f"{user_module}:load"
    spec = write_spec(tmp_path / "spec.yaml", small_spec(data={"source": source, "max_samples": None}))
    out = tmp_path / "run"
    args = [command, str(spec)] + (["--out", str(out), "--quiet"] if command == "run" else [])
    assert main(args) == 2
    err = one_line_error(capsys, f"data.source '{source}' raised ValueError: cannot parse row 7 of my.csv")
    assert "second line" not in err
    assert not out.exists()


def test_a_raising_backbone_is_one_line(tmp_path, capsys, user_module):
    name = f"{user_module}:backbone"
    spec = write_spec(tmp_path / "spec.yaml", small_spec(backbone={"name": name, "options": {}}))
    out = tmp_path / "run"
    assert main(["run", str(spec), "--out", str(out), "--quiet"]) == 2
    one_line_error(capsys, f"backbone.name '{name}' raised KeyError: \"no layer named 'conv9'\"")
    assert not out.exists()


def test_debug_shows_the_users_traceback(tmp_path, user_module):
    spec = write_spec(tmp_path / "spec.yaml", small_spec(data={"source": f"{user_module}:load", "max_samples": None}))
    with pytest.raises(Exception) as caught:
        main(["--debug", "validate", str(spec)])
    assert isinstance(caught.value, ShareSearchError), caught.value  # the one line, raised
    cause = caught.value.__cause__
    assert isinstance(cause, ValueError) and "row 7" in str(cause)
    assert cause.__traceback__ is not None  # the user's own frames, for the traceback --debug prints


# --------------------------------------------------------------------------- leaderboard --output, report --out
@pytest.fixture
def run_folder(tmp_path) -> Path:
    """A real run folder with no trials yet (its study and resolved spec), made without Ray."""
    spec = parse_spec(small_spec())
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    with warnings.catch_warnings():  # Optuna flags set_metric_names as experimental
        warnings.simplefilter("ignore")
        create_or_load_study(spec, load_problem(spec), open_storage(storage_url(spec, run_dir)), resume=False)
    (run_dir / "spec.resolved.yaml").write_text(spec.to_yaml())
    return run_dir


def _bad_outputs(tmp_path: Path) -> dict[str, tuple[Path, str]]:
    """Output paths that cannot take a file, and the words their error must hold."""
    folder = tmp_path / "reports"
    folder.mkdir()
    blocker = tmp_path / "notes.txt"
    blocker.write_text("my notes\n")
    place = _unwritable_folder(tmp_path)
    return {
        "a-folder": (folder, f"{folder} is a folder"),
        "under-a-file": (blocker / "out.csv", f"{blocker} is not a folder"),
        "unwritable": (place / f"out-{uuid.uuid4().hex[:8]}.csv", f"no write access to {place}"),
    }


@pytest.mark.parametrize("case", ["a-folder", "under-a-file", "unwritable"])
@pytest.mark.parametrize("command,flag", [(["leaderboard", "--format", "csv"], "--output"), (["report"], "--out")])
def test_an_output_path_that_cannot_take_a_file_names_the_flag(run_folder, tmp_path, capsys, case, command, flag):
    path, words = _bad_outputs(tmp_path)[case]
    before = file_tree(tmp_path)
    assert main([command[0], str(run_folder), *command[1:], flag, str(path)]) == 2
    one_line_error(capsys, f"{flag}: ", words)
    assert file_tree(tmp_path) == before


def test_leaderboard_output_makes_missing_folders_as_report_does(run_folder, tmp_path, capsys):
    path = tmp_path / "results" / "today" / "board.csv"
    assert main(["leaderboard", str(run_folder), "--format", "csv", "--output", str(path)]) == 0
    assert path.read_text().startswith("rank,")
