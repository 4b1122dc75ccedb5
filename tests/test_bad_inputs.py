"""Bad input through the command line: each is one line naming the key, file or value,
exit code 2, no traceback, and nothing written, neither a new run folder nor a change to an
existing one.

Table-driven: ``FRESH`` cases run against a folder that must stay absent, ``EXISTING``
cases against the finished run of the shared ``small_run`` fixture, which must stay
byte-for-byte the same.
"""

from __future__ import annotations

import copy
import hashlib
from pathlib import Path
from typing import Callable

import numpy as np
import pytest
import yaml

from share_search.cli import main

GOOD = {
    "name": "bad-input",
    "seed": 0,
    "data": {"source": "digits", "max_samples": 200},
    "tasks": {"digit": {"metric": "accuracy"}, "odd": {"metric": "accuracy"}},
    "backbone": {"name": "mlp", "options": {"widths": [8]}},
    "families": {"tree": {}},
    "train": {"epochs": 1},
    "search": {"trials": 2},
}
UNREACHABLE_PG = "postgresql+psycopg2://share:secret@127.0.0.1:1/nowhere"


def changed(**dotted) -> dict:
    """GOOD with dotted keys replaced (``"search.trials"``); the value DROP removes a key."""
    spec = copy.deepcopy(GOOD)
    for path, value in dotted.items():
        *parents, last = path.split("__")
        node = spec
        for p in parents:
            node = node.setdefault(p, {})
        if value is DROP:
            node.pop(last, None)
        else:
            node[last] = value
    return spec


DROP = object()


def npz(**arrays) -> Callable[[Path], dict]:
    """A spec reading an .npz written with ``arrays`` (labels ``a`` and ``b``)."""

    def make(folder: Path) -> dict:
        path = folder / "data.npz"
        np.savez(path, **arrays)
        return changed(data={"source": str(path)}, tasks={"a": {}, "b": {}})

    return make


rng = np.random.default_rng(0)
X = rng.normal(size=(100, 4))
A = rng.integers(0, 3, 100).astype(float)
B = rng.integers(0, 2, 100).astype(float)
X_NAN = X.copy()
X_NAN[:3, 0] = np.nan
B_INF = B.copy()
B_INF[5] = np.inf


def _csv_without_inputs(folder: Path) -> dict:
    path = folder / "table.csv"
    path.write_text("f1,f2,a,b\n" + "\n".join(f"{i},{i * 2},{i % 3},{i % 2}" for i in range(40)))
    return changed(data={"source": str(path)}, tasks={"a": {}, "b": {}})


# (id, spec: dict | raw YAML text | a function of the folder, extra CLI args, words in the error)
FRESH = [
    ("malformed-yaml", "name: x\ndata: {source: digits\ntasks: [", [], "malformed YAML at line"),
    ("empty-file", "", [], "is empty"),
    ("top-level-list", "- name\n- data\n", [], "top level must be a mapping"),
    ("spec-not-found", None, [], "spec file not found"),
    ("unknown-top-key", changed(serach={"trials": 3}), [], "serach: unknown key 'serach'"),
    ("unknown-search-key", changed(search__trails=3), [], "search.trails: unknown key 'trails'"),
    ("trials-not-int", changed(search__trials="many"), [], "search.trials: "),
    ("lr-not-number", changed(train__lr="fast"), [], "train.lr: expected a number, got 'fast'"),
    ("empty-families", changed(families={}), [], "families: needs at least one sharing family"),
    ("unknown-family", changed(families={"stitch": {}}), [], "families.stitch: unknown family 'stitch'"),
    ("metric-misfits-task", changed(tasks__digit={"metric": "mae"}), [], "tasks.digit.metric: metric 'mae' does not fit a multiclass task"),
    ("label-not-in-data", changed(tasks__colour={}), [], "tasks.colour.label: data 'digits' has no label 'colour'"),
    ("zero-stages", changed(backbone__options={"widths": []}), [], "backbone: backbone 'mlp' has zero stages"),
    ("backbone-bad-option", changed(backbone__options={"depth": 3}), [], "backbone.options: mlp: "),
    ("backbone-no-import", changed(backbone__name="no_such_module:make"), [], "backbone.name: cannot import module 'no_such_module'"),
    ("backbone-no-function", changed(backbone__name="tests.fault_backbones:missing"), [], "backbone.name: module 'tests.fault_backbones' has no function 'missing'"),
    ("unknown-sampler", changed(search__sampler="bayes"), [], "search.sampler: "),
    ("grid-with-range", changed(search__sampler="grid", train__lr={"low": 0.001, "high": 0.1}), [], "train.lr: the grid sampler needs a fixed value or a choice list"),
    ("unknown-dataset", changed(data__source="digitz"), [], "data.source: unknown data source 'digitz'"),
    ("data-file-missing", changed(data__source="no/such/file.npz"), [], "no/such/file.npz: data file not found"),
    ("data-module-no-import", changed(data__source="no_such_module:load"), [], "data.source: cannot import module 'no_such_module'"),
    ("label-all-nan", npz(x=X, a=A, b=np.full(100, np.nan)), [], "label 'b' has no values (every row is missing)"),
    ("label-infinite", npz(x=X, a=A, b=B_INF), [], "label 'b' has 1 infinite value(s)"),
    ("label-wrong-length", npz(x=X, a=A, b=B[:99]), [], "label 'b' has 99 rows but input 'x' has 100 rows"),
    ("input-with-nan", npz(x=X_NAN, a=A, b=B), [], "input 'x' has 3 NaN or infinite value(s)"),
    ("csv-without-inputs", _csv_without_inputs, [], "data.inputs: required for a .csv file"),
    ("storage-unreachable", changed(search__storage=UNREACHABLE_PG), [], "search.storage: cannot open storage 'postgresql+psycopg2://share:***@127.0.0.1:1/nowhere'"),
    ("storage-malformed", changed(search__storage="not a url"), [], "search.storage: cannot open storage 'not a url'"),
    ("trials-zero-flag", GOOD, ["--trials", "0"], "search.trials: "),
    ("resume-nothing", GOOD, ["--resume"], "--resume: "),
    ("address-unreachable", GOOD, ["--address", "127.0.0.1:1"], "--address: cannot reach a Ray head at '127.0.0.1:1'"),
]


def _write(folder: Path, spec) -> Path:
    path = folder / "spec.yaml"
    if spec is None:
        return folder / "missing.yaml"
    if callable(spec):
        spec = spec(folder)
    path.write_text(spec if isinstance(spec, str) else yaml.safe_dump(spec, sort_keys=False))
    return path


def _one_line_error(capsys, words: str) -> str:
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "\n" not in err and "Traceback" not in err, err
    assert words in err, err
    return err


@pytest.mark.parametrize("spec,args,words", [c[1:] for c in FRESH], ids=[c[0] for c in FRESH])
def test_bad_input_writes_nothing(tmp_path, capsys, spec, args, words):
    path = _write(tmp_path, spec)
    out = tmp_path / "run"
    before = sorted(tmp_path.rglob("*"))
    assert main(["run", str(path), "--out", str(out), "--quiet", *args]) == 2
    err = _one_line_error(capsys, words)
    assert "secret" not in err  # a storage password is never printed
    assert not out.exists()
    assert sorted(tmp_path.rglob("*")) == before


def test_out_that_is_a_file_is_left_alone(tmp_path, capsys):
    path = _write(tmp_path, GOOD)
    out = tmp_path / "taken"
    out.write_text("not a folder")
    assert main(["run", str(path), "--out", str(out), "--quiet"]) == 2
    _one_line_error(capsys, f"--out: {out} exists and is not a folder")
    assert out.read_text() == "not a folder"


# --------------------------------------------------------------------------- an existing run
def _fingerprint(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.rglob("*")) if p.is_file()}


def _spec_of(run_dir: Path, folder: Path, **search) -> Path:
    spec = yaml.safe_load((run_dir / "spec.resolved.yaml").read_text())
    spec["search"].update(search)
    return _write(folder, spec)


def _other_tasks(run_dir: Path, folder: Path) -> Path:
    spec = yaml.safe_load((run_dir / "spec.resolved.yaml").read_text())
    spec["tasks"].pop(next(iter(spec["tasks"])))
    return _write(folder, spec)


# (id, arguments given the run folder and a scratch folder, words in the error)
EXISTING = [
    ("run-again-without-resume", lambda run, tmp: ["run", str(_spec_of(run, tmp)), "--out", str(run)], "already holds a run; continue it with --resume"),
    ("resume-with-other-tasks", lambda run, tmp: ["run", str(_other_tasks(run, tmp)), "--out", str(run), "--resume"], "--resume: the spec differs"),
    ("resume-storage-unreachable", lambda run, tmp: ["run", str(_spec_of(run, tmp, storage=UNREACHABLE_PG)), "--out", str(run), "--resume"], "search.storage: cannot open storage"),
    ("resume-address-unreachable", lambda run, tmp: ["run", str(_spec_of(run, tmp)), "--out", str(run), "--resume", "--address", "127.0.0.1:1"], "--address: cannot reach"),
    ("export-top-too-large", lambda run, tmp: ["export", str(run), "--top", "999"], "--top 999: only "),
    ("export-top-zero", lambda run, tmp: ["export", str(run), "--top", "0"], "--top must be >= 1, got 0"),
    ("leaderboard-bad-budget", lambda run, tmp: ["leaderboard", str(run), "--budget", "params<=lots"], "a budget must read `params<=N` or `macs<=N`"),
    ("leaderboard-unknown-rank-key", lambda run, tmp: ["leaderboard", str(run), "--rank-by", "colour"], "`rank_by` must be one of"),
    ("leaderboard-not-a-run", lambda run, tmp: ["leaderboard", str(tmp)], "is not a run folder (no spec.resolved.yaml)"),
]


@pytest.mark.parametrize("make_args,words", [c[1:] for c in EXISTING], ids=[c[0] for c in EXISTING])
def test_bad_input_leaves_an_existing_run_unchanged(small_run, tmp_path, capsys, make_args, words):
    run_dir = small_run.run_dir
    before = _fingerprint(run_dir)
    args = make_args(run_dir, tmp_path)
    capsys.readouterr()
    assert main([*args[:1], *args[1:], *(["--quiet"] if args[0] == "run" else [])]) == 2
    _one_line_error(capsys, words)
    assert _fingerprint(run_dir) == before


def test_at_least_25_bad_inputs_are_covered():
    assert len(FRESH) + len(EXISTING) + 1 >= 25
