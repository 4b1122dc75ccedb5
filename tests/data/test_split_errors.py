"""Bad official splits fail through ``share-search validate``: exit 2, one line naming the file
and the key or value at fault, no traceback, nothing written."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import yaml

from share_search.cli import main

USER_MODULE = '''
import numpy as np


def rows(n):
    return {"x": np.arange(2.0 * n).reshape(n, 2), "parity": np.arange(n) % 2, "third": np.arange(n) % 3}


def unknown_split():
    return {"train": rows(20), "dev": rows(5)}


def train_only():
    return {"train": rows(20)}


def empty_test():
    return {"train": rows(20), "test": rows(0)}
'''


def frame(n: int, split=None, **columns) -> pd.DataFrame:
    out = pd.DataFrame({"a": np.arange(n, dtype=float), "b": np.ones(n), "parity": np.arange(n) % 2, "third": np.arange(n) % 3, **columns})
    if split is not None:
        out["split"] = split
    return out


def csv(tmp_path, name: str, table: pd.DataFrame) -> str:
    table.to_csv(tmp_path / name, index=False)
    return name


def npz(tmp_path, name: str, n: int, drop: str | None = None, **arrays) -> str:
    """Inputs ``x``, labels ``parity`` and ``third`` (less ``drop``), and ``arrays``."""
    base = {"x": np.arange(2.0 * n).reshape(n, 2), "parity": np.arange(n) % 2, "third": np.arange(n) % 3}
    np.savez(tmp_path / name, **{k: v for k, v in {**base, **arrays}.items() if k != drop})
    return name


def spec(source, tasks=None, **data):
    return {
        "name": "bad-splits",
        "data": {"source": source, **data},
        "tasks": tasks or {"parity": {}, "third": {}},
        "backbone": {"name": "mlp", "options": {"widths": [8]}},
        "families": {"tree": {}},
    }


TABLE = {"inputs": ["a", "b"]}
SPLIT_ROWS = ["train"] * 20 + ["val"] * 5 + ["test"] * 5

# id, make(tmp_path) -> raw spec, fragments the one-line error must hold
CASES = [
    ("column-unknown-values",
     lambda t: spec(csv(t, "d.csv", frame(30, ["train"] * 20 + ["dev"] * 5 + ["holdout"] * 5)), **TABLE),
     ["d.csv: column 'split' has unknown split value(s) 'dev', 'holdout'; each row needs one of: train, val (or valid, validation), test"]),
    ("column-empty-cell",
     lambda t: spec(csv(t, "d.csv", frame(30, SPLIT_ROWS[:-1] + [None])), **TABLE),
     ["d.csv: column 'split' has unknown split value(s) '' (empty)"]),
    ("npz-array-unknown-values",
     lambda t: spec(npz(t, "d.npz", 30, split=np.array(["train"] * 25 + ["tst"] * 5))),
     ["d.npz: array 'split' has unknown split value(s) 'tst'"]),
    ("parquet-numeric-split",
     lambda t: (frame(30, np.arange(30) % 3).to_parquet(t / "d.parquet"), spec("d.parquet", **TABLE))[1],
     ["d.parquet: column 'split' has unknown split value(s) '0', '1', '2'"]),
    ("column-train-only",
     lambda t: spec(csv(t, "d.csv", frame(30, ["train"] * 30)), **TABLE),
     ["d.csv with column 'split' = train: only a train split is given; add val or test rows"]),
    ("column-too-small-train-to-carve-val",
     lambda t: spec(csv(t, "d.csv", frame(11, ["train"] + ["test"] * 10)), **TABLE),
     ["d.csv with column 'split' = train: the official train split has 1 row(s), too few to carve a val split (data.val_fraction=0.15)"]),
    ("split-as-a-task-label",
     lambda t: spec(csv(t, "d.csv", frame(30, SPLIT_ROWS)), tasks={"parity": {}, "where": {"label": "split"}}, **TABLE),
     ["tasks.where.label: 'split' names a data file's split column (train/val/test per row), never a label"]),
    ("split-as-an-input",
     lambda t: spec(csv(t, "d.csv", frame(30, np.zeros(30))), inputs=["a", "split"]),
     ["data.inputs: 'split' names the split column (train/val/test per row), never an input"]),
    ("files-unknown-split-name",
     lambda t: spec({"train": npz(t, "a.npz", 20), "dev": npz(t, "b.npz", 5)}),
     ["data.source.dev: unknown split 'dev' (known: train, val, test)"]),
    ("files-missing-file",
     lambda t: spec({"train": npz(t, "a.npz", 20), "test": "nope.npz"}),
     ["nope.npz (data.source.test): data file not found"]),
    ("files-empty-split",
     lambda t: spec({"train": npz(t, "a.npz", 20), "val": npz(t, "b.npz", 0), "test": npz(t, "c.npz", 5)}),
     ["b.npz (data.source.val): the official val split has no rows"]),
    ("files-empty-csv",
     lambda t: spec({"train": csv(t, "a.csv", frame(20)), "test": csv(t, "b.csv", frame(0))}, **TABLE),
     ["b.csv (data.source.test): the file has no rows"]),
    ("files-too-small-train",
     lambda t: spec({"train": npz(t, "a.npz", 1), "test": npz(t, "c.npz", 5)}),
     ["a.npz (data.source.train): the official train split has 1 row(s), too few to carve a val split"]),
    ("files-label-missing-in-one-split",
     lambda t: spec({"train": npz(t, "a.npz", 20), "test": npz(t, "c.npz", 5, drop="third")}),
     ["c.npz (data.source.test): no array 'third', which the train split", "a.npz (data.source.train)) has"]),
    ("files-extra-label-in-one-split",
     lambda t: spec({"train": npz(t, "a.npz", 20), "test": npz(t, "c.npz", 5, extra=np.arange(5))}),
     ["c.npz (data.source.test): array 'extra' is not in the train split"]),
    ("files-input-shapes-differ",
     lambda t: spec({"train": npz(t, "a.npz", 20), "test": npz(t, "c.npz", 5, x=np.zeros((5, 3)))}),
     ["c.npz (data.source.test): input 'x' is (3,) per row, but (2,) in the train split"]),
    ("files-column-missing-in-one-split",
     lambda t: spec({"train": csv(t, "a.csv", frame(20, note=["n"] * 20)), "val": csv(t, "b.csv", frame(5))}, **TABLE),
     ["b.csv (data.source.val): no column 'note', which the train split"]),
    ("files-text-and-numbers",
     lambda t: spec({"train": csv(t, "a.csv", frame(20)), "test": csv(t, "b.csv", frame(5).assign(third=["x"] * 5))}, **TABLE),
     ["b.csv (data.source.test): label 'third' holds text (class names), but numbers in the train split"]),
    ("files-with-their-own-split-column",
     lambda t: spec({"train": csv(t, "a.csv", frame(20, ["train"] * 20)), "test": csv(t, "b.csv", frame(5))}, **TABLE),
     ["a.csv (data.source.train): has a column 'split', but the splits are already given one by one"]),
    ("files-of-different-kinds",
     lambda t: spec({"train": npz(t, "a.npz", 20), "test": csv(t, "b.csv", frame(5))}),
     ["data.source.test: every split's file is a .npz file like data.source.train, got 'b.csv'"]),
    ("files-train-only",
     lambda t: spec({"train": npz(t, "a.npz", 20)}),
     ["data.source: one file per split needs a val or test file beside train"]),
    ("files-no-train",
     lambda t: spec({"val": npz(t, "a.npz", 20), "test": npz(t, "b.npz", 5)}),
     ["data.source: one file per split needs a train file, got test, val"]),
    ("files-not-a-file",
     lambda t: spec({"train": npz(t, "a.npz", 20), "test": "digits"}),
     ["data.source.test: expected a .npz, .csv or .parquet file, got 'digits'"]),
    ("source-neither-name-nor-mapping",
     lambda t: spec(["a.npz", "b.npz"]),
     ["data.source: expected a built-in name, a file, module:function or {train: FILE, val: FILE, test: FILE}, got ['a.npz', 'b.npz']"]),
    ("function-unknown-split",
     lambda t: spec("share_search_test_badsplits:unknown_split"),
     ["share_search_test_badsplits:unknown_split: returned splits 'train', 'dev': unknown split 'dev' (known: train, val, test)"]),
    ("function-train-only",
     lambda t: spec("share_search_test_badsplits:train_only"),
     ["share_search_test_badsplits:train_only (its 'train' split): only a train split is given"]),
    ("function-empty-split",
     lambda t: spec("share_search_test_badsplits:empty_test"),
     ["share_search_test_badsplits:empty_test (its 'test' split): the official test split has no rows"]),
]


@pytest.mark.parametrize("make, fragments", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_splits_fail_validate_with_one_line(tmp_path, monkeypatch, capsys, make, fragments):
    (tmp_path / "share_search_test_badsplits.py").write_text(USER_MODULE)
    monkeypatch.chdir(tmp_path)
    path = tmp_path / "spec.yaml"
    path.write_text(yaml.safe_dump(make(tmp_path)))
    before = sorted(p.name for p in tmp_path.iterdir() if p.name != "__pycache__")
    assert main(["validate", str(path)]) == 2
    out, err = capsys.readouterr()
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and "Traceback" not in err, err
    for fragment in fragments:
        assert fragment in lines[0], lines[0]
    assert sorted(p.name for p in tmp_path.iterdir() if p.name != "__pycache__") == before  # nothing written
