"""The command line's own arguments and the ``init``/``validate`` mistakes of issue 16
(items 10, 12 and 16): ``--debug`` after the subcommand, ``--version``, ``init`` names and
targets, and specs that used to end in a traceback. Bad input: exit 2, one stderr line,
no traceback, nothing written.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import share_search
from share_search.cli import main
from share_search.errors import SpecError
from share_search.spec.model import load_spec, name_problem
from tests.test_bad_inputs import _one_line_error

GOOD = "name: t\ndata: {source: digits, max_samples: 200}\ntasks: {digit: {}, odd: {}}\nbackbone: {options: {widths: [8]}}\nfamilies: [tree]\n"


def test_debug_after_the_subcommand_shows_the_traceback(tmp_path, capsys):
    path = tmp_path / "bad.yaml"
    path.write_text(GOOD.replace("families: [tree]", "families: [stitch]"))
    assert main(["validate", str(path)]) == 2
    _one_line_error(capsys, "families.stitch: unknown family 'stitch'")
    for argv in (["validate", str(path), "--debug"], ["--debug", "validate", str(path)]):
        with pytest.raises(SpecError, match="families.stitch"):
            main(argv)


def test_version(capsys):
    with pytest.raises(SystemExit) as info:
        main(["--version"])
    assert info.value.code == 0
    assert capsys.readouterr().out.strip() == f"share-search {share_search.__version__}"


# file name given to init -> every one writes a name its own validate accepts
INIT_NAMES = ["My search.yaml", "Mé search.yaml", "_private.yaml", "yes.yaml", "null.yaml", "123.yaml", "1e3.yaml", "-.yaml", "a" * 200 + ".yaml"]


@pytest.mark.parametrize("file_name", INIT_NAMES, ids=[n[:20] for n in INIT_NAMES])
def test_init_writes_a_name_validate_accepts(tmp_path, file_name):
    path = tmp_path / file_name
    assert main(["init", str(path)]) == 0
    spec = load_spec(path)  # validate's first step: the spec's rules
    assert isinstance(spec.name, str) and name_problem(spec.name) is None


def test_init_force_onto_a_folder_is_refused(tmp_path, capsys):
    folder = tmp_path / "specs"
    folder.mkdir()
    (folder / "keep.txt").write_text("mine")
    assert main(["init", str(folder), "--force"]) == 2
    _one_line_error(capsys, f"init: {folder} is a folder; give the spec file to write")
    assert [p.name for p in folder.iterdir()] == ["keep.txt"] and (folder / "keep.txt").read_text() == "mine"


def test_init_under_a_file_is_refused(tmp_path, capsys):
    (tmp_path / "notes").write_text("mine")
    assert main(["init", str(tmp_path / "notes" / "s.yaml")]) == 2
    _one_line_error(capsys, "init: cannot write")
    assert (tmp_path / "notes").read_text() == "mine"


# (id, spec bytes or text, words in the one-line error) -- validate used to end in a traceback or accept them
VALIDATE_REFUSED = [
    ("random-bytes", bytes(np.random.default_rng(16).integers(0, 256, 4096, dtype=np.uint8)), "a spec is UTF-8 text, but byte"),
    ("name-300-characters", GOOD.replace("name: t", "name: " + "n" * 300), "name: at most 100 characters (it names the run folder), got 300"),
    (
        "grid-with-lr-range",
        GOOD + "train: {lr: {low: 0.001, high: 0.1}}\nsearch: {sampler: grid}\n",
        "train.lr: the grid sampler needs a fixed value or a choice list, got a range [0.001, 0.1]",
    ),
    ("alias", GOOD + "train: &t {epochs: 1}\nsearch: {resources: *t}\n", "line 7: YAML aliases (*t) are not allowed in a spec"),
    ("task-named-params", GOOD.replace("odd: {}", "params: {}"), "tasks.params: 'params' is also a leaderboard column"),
]


@pytest.mark.parametrize("command", ["validate", "run"])
@pytest.mark.parametrize("content,words", [c[1:] for c in VALIDATE_REFUSED], ids=[c[0] for c in VALIDATE_REFUSED])
def test_bad_spec_exits_2_in_one_line(tmp_path, capsys, command, content, words):
    path = tmp_path / "spec.yaml"
    path.write_bytes(content if isinstance(content, bytes) else content.encode())
    out = tmp_path / "run"
    assert main([command, str(path), *(["--out", str(out), "--quiet"] if command == "run" else [])]) == 2
    _one_line_error(capsys, words)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["spec.yaml"]


def test_validate_reads_a_relative_data_file_from_the_spec_folder(tmp_path, monkeypatch, capsys):
    folder = tmp_path / "project"
    folder.mkdir()
    rng = np.random.default_rng(0)
    np.savez(folder / "table.npz", x=rng.normal(size=(80, 3)), a=rng.integers(0, 2, 80).astype(float), b=rng.normal(size=80))
    (folder / "spec.yaml").write_text("name: rel\ndata: {source: table.npz}\ntasks: {a: {}, b: {}}\nbackbone: {options: {widths: [4]}}\nfamilies: [tree]\n")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    assert main(["validate", str(Path("..") / "project" / "spec.yaml")]) == 0
    assert f"data file: {folder / 'table.npz'}" in capsys.readouterr().out
