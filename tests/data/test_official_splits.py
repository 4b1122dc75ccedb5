"""Official splits: a ``split`` column or array, one file per split, or a function returning splits.

Every row carries its id as input feature 0, so a test can say exactly which rows landed
in which split. The rule under test (``assemble_splits``): official splits are kept; with
only train and test, val is carved from train by the seed, never from test; with only
train and val, val is carved from train and the official val is held out as test; one
pool without splits is split at random by the seed, as before.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import yaml

from share_search.cli import main
from share_search.data import SPLITS, load_data
from share_search.data._base import RANDOM_SPLIT_ORIGIN
from share_search.spec.model import DataSpec, load_spec

N_TRAIN, N_VAL, N_TEST = 60, 20, 20
OFFICIAL = {"train": range(0, 60), "val": range(60, 80), "test": range(80, 100)}
KINDS = (".npz", ".csv", ".parquet")

USER_MODULE = '''
import numpy as np
import torch


def rows(ids):
    ids = np.asarray(list(ids))
    return {"x": np.stack([ids, ids * 0.5], axis=1).astype(float), "parity": ids % 2, "third": ids % 3}


def mapping_splits():
    return {"train": rows(range(0, 60)), "val": rows(range(60, 80)), "test": rows(range(80, 100))}


def pair_splits():  # each split as (inputs, labels), one as tensors; no val: carved from train
    def pair(ids):
        r = rows(ids)
        return torch.tensor(r.pop("x")), r
    return {"test": pair(range(80, 100)), "train": pair(range(0, 60))}


def split_entry():  # one pool whose `split` entry says each row's split
    r = rows(range(100))
    r["split"] = ["train"] * 60 + ["val"] * 20 + ["test"] * 20
    return r


def one_pool():  # the form from before official splits: a random split by the seed
    return rows(range(100))
'''


def table(ids, split=None) -> pd.DataFrame:
    """Two inputs (the id first), a binary, a 3-class and a text label; a split column when given."""
    ids = np.asarray(list(ids))
    frame = pd.DataFrame({"id": ids.astype(float), "half": ids * 0.5, "parity": ids % 2, "third": ids % 3,
                          "animal": np.where(ids % 2 == 0, "cat", "dog")})  # fmt: skip
    if split is not None:
        frame["split"] = split
    return frame


def official_column(names=("train", "val", "test")) -> list[str]:
    return [names[0]] * N_TRAIN + [names[1]] * N_VAL + [names[2]] * N_TEST


def write(frame: pd.DataFrame, path) -> str:
    """``frame`` as a .csv, .parquet or .npz (inputs ``x``, text as str arrays) at ``path``."""
    if path.suffix == ".csv":
        frame.to_csv(path, index=False)
    elif path.suffix == ".parquet":
        frame.to_parquet(path)
    else:
        arrays = {c: frame[c].to_numpy() for c in frame.columns if c not in ("id", "half")}
        arrays = {c: (v.astype(str) if v.dtype == object else v) for c, v in arrays.items()}
        np.savez(path, x=frame[["id", "half"]].to_numpy(), **arrays)
    return str(path)


def data_spec(source, kind: str, **more) -> DataSpec:
    inputs = None if kind == ".npz" else ["id", "half"]
    return DataSpec(source=source, inputs=inputs, **more)


def ids(split) -> list[int]:
    return sorted(int(i) for i in split.x[:, 0])


def spec_file(tmp_path, source, kind: str = ".npz", tasks=None, **data) -> str:
    raw = {
        "name": "splits",
        "data": {"source": source, **({} if kind == ".npz" else {"inputs": ["id", "half"]}), **data},
        "tasks": tasks or {"parity": {}, "third": {}},
        "backbone": {"name": "mlp", "options": {"widths": [8]}},
        "families": {"tree": {}},
    }
    path = tmp_path / "spec.yaml"
    path.write_text(yaml.safe_dump(raw))
    return str(path)


# --------------------------------------------------------------------------- a split column or array
@pytest.mark.parametrize("kind", KINDS)
def test_a_split_field_gives_the_official_splits_and_is_never_a_label(tmp_path, kind):
    path = write(table(range(100), official_column()), tmp_path / f"d{kind}")
    data = load_data(data_spec(path, kind), seed=0)  # every label: the split field still is none
    for name in SPLITS:
        assert ids(data.split(name)) == list(OFFICIAL[name])
    assert "split" not in data.labels and "split" not in data.unused_labels
    assert set(data.labels) >= {"parity", "third"}
    assert data.split_origin["val"] == f"official val: rows of {path} with {'array' if kind == '.npz' else 'column'} 'split' = val"
    tasks_only = load_data(data_spec(path, kind), seed=0, labels={"parity", "animal"})
    assert "split" not in tasks_only.labels and "split" not in tasks_only.unused_labels


def test_a_split_column_takes_other_spellings_of_val_case_and_blanks(tmp_path):
    names = [" Train", "VALID ", "test"] * 33 + ["validation"]
    path = write(table(range(100), names), tmp_path / "d.csv")
    data = load_data(data_spec(path, ".csv"), seed=0)
    assert ids(data.train) == list(range(0, 99, 3))
    assert ids(data.val) == sorted([*range(1, 99, 3), 99])
    assert ids(data.test) == list(range(2, 99, 3))


@pytest.mark.parametrize("kind", KINDS)
def test_train_and_test_only_carve_val_from_train_by_the_seed(tmp_path, kind):
    frame = table(range(100), official_column())
    path = write(frame[frame["split"] != "val"], tmp_path / f"d{kind}")
    data = load_data(data_spec(path, kind, val_fraction=0.2), seed=0)
    assert ids(data.test) == list(OFFICIAL["test"])  # test untouched: val never comes from it
    assert len(data.val) == round(N_TRAIN * 0.2) and len(data.train) == N_TRAIN - len(data.val)
    assert sorted(ids(data.train) + ids(data.val)) == list(OFFICIAL["train"])
    again, other = (load_data(data_spec(path, kind, val_fraction=0.2), seed=s) for s in (0, 1))
    assert ids(again.val) == ids(data.val) and ids(other.val) != ids(data.val)  # by the seed
    assert data.split_origin["val"] == "carved from the official train by seed 0 (20% of its rows)"
    assert data.split_origin["test"].startswith("official test: rows of")


def test_train_and_val_only_hold_the_official_val_out_as_test(tmp_path):
    frame = table(range(80), official_column()[:80])
    path = write(frame, tmp_path / "d.parquet")
    data = load_data(data_spec(path, ".parquet"), seed=3)
    assert ids(data.test) == list(OFFICIAL["val"])  # the official val is reported on, never selected on
    assert sorted(ids(data.train) + ids(data.val)) == list(OFFICIAL["train"])
    assert len(data.val) == round(N_TRAIN * 0.15)
    assert data.split_origin["val"] == "carved from the official train by seed 3 (15% of its rows)"
    assert data.split_origin["test"].startswith("official val, held out as test (no test given; selection uses the val carved from train)")


def test_one_pool_keeps_the_random_split_by_the_seed(tmp_path):
    path = write(table(range(100)), tmp_path / "d.npz")
    data = load_data(data_spec(path, ".npz"), seed=0)
    assert data.sizes == {"train": 70, "val": 15, "test": 15}
    assert data.split_origin["val"] == f"random 15% of {path} by seed 0 (data.val_fraction)"
    assert load_data(DataSpec(source="digits"), seed=0).split_origin == dict.fromkeys(SPLITS, RANDOM_SPLIT_ORIGIN)


def test_max_samples_cuts_each_official_split_within_itself(tmp_path):
    path = write(table(range(100), official_column()), tmp_path / "d.csv")
    data = load_data(data_spec(path, ".csv", max_samples=50), seed=0)
    assert data.sizes == {"train": 30, "val": 10, "test": 10}
    for name in SPLITS:
        assert set(ids(data.split(name))) <= set(OFFICIAL[name])


# --------------------------------------------------------------------------- one file per split
@pytest.mark.parametrize("kind", KINDS)
def test_one_file_per_split(tmp_path, kind):
    files = {name: write(table(OFFICIAL[name]), tmp_path / f"{name}{kind}") for name in ("test", "train", "val")}
    data = load_data(data_spec(files, kind), seed=0)
    for name in SPLITS:
        assert ids(data.split(name)) == list(OFFICIAL[name])
    assert data.split_origin == {name: f"official {name}: {files[name]} (data.source.{name})" for name in SPLITS}
    assert data.name == f"train{kind}" and data.input_shape == (2,)


def test_classes_are_numbered_over_every_split_file(tmp_path):
    """A class only one split holds, and a text label, keep one numbering in every split."""
    train, val, test = table(range(0, 60)), table(range(60, 80)), table(range(80, 100))
    train["third"] = train["third"] % 2  # classes 0, 1 in train; 0, 1, 2 in test
    test["animal"] = "bird"  # a class train never has
    val["animal"] = None  # every cell empty: pandas reads NaN numbers, which beside text are missing class names
    files = {name: write(frame, tmp_path / f"{name}.csv") for name, frame in (("train", train), ("val", val), ("test", test))}
    data = load_data(data_spec(files, ".csv"), seed=0, labels={"third", "animal"})
    assert data.labels["third"].n_outputs == 3 and data.labels["animal"].class_names == ("bird", "cat", "dog")
    assert set(data.test.y["animal"]) == {0.0} and set(data.train.y["animal"]) == {1.0, 2.0}
    assert np.isnan(data.val.y["animal"]).all()
    np.testing.assert_array_equal(data.test.y["third"], np.arange(80, 100) % 3)


def test_split_files_start_from_the_spec_folder_and_validate_says_where_each_split_came_from(tmp_path, capsys):
    (tmp_path / "nyu").mkdir()
    write(table(OFFICIAL["train"]), tmp_path / "nyu" / "train.npz")
    write(table(OFFICIAL["val"]), tmp_path / "nyu" / "val.npz")
    spec = spec_file(tmp_path, {"val": "nyu/val.npz", "train": "nyu/train.npz"})
    assert load_spec(spec).data.source == {"train": str(tmp_path / "nyu" / "train.npz"), "val": str(tmp_path / "nyu" / "val.npz")}
    assert main(["validate", spec]) == 0, capsys.readouterr().err
    out = capsys.readouterr().out
    assert f"data file (val): {tmp_path / 'nyu' / 'val.npz'}" in out
    assert "train 51, val 9, test 20" in out
    assert "  val: carved from the official train by seed 0 (15% of its rows)" in out
    assert "  test: official val, held out as test (no test given; selection uses the val carved from train)" in out


def test_validate_says_which_rows_of_a_split_column_made_each_split(tmp_path, capsys):
    path = write(table(range(100), official_column()), tmp_path / "d.csv")
    assert main(["validate", spec_file(tmp_path, path, ".csv")]) == 0, capsys.readouterr().err
    out = capsys.readouterr().out
    assert "train 60, val 20, test 20" in out
    assert f"  test: official test: rows of {path} with column 'split' = test" in out


# --------------------------------------------------------------------------- module:function
@pytest.fixture
def user_module(tmp_path, monkeypatch):
    (tmp_path / "share_search_test_splits.py").write_text(USER_MODULE)
    monkeypatch.chdir(tmp_path)
    return "share_search_test_splits"


def test_a_function_returning_a_mapping_of_splits(user_module):
    data = load_data(DataSpec(source=f"{user_module}:mapping_splits"), seed=0)
    for name in SPLITS:
        assert ids(data.split(name)) == list(OFFICIAL[name])
    assert data.split_origin["test"] == f"official test: {user_module}:mapping_splits (its 'test' split)"
    assert (data.labels["parity"].kind, data.labels["third"].n_outputs) == ("binary", 3)


def test_a_function_returning_train_and_test_pairs_gets_val_carved_from_train(user_module):
    data = load_data(DataSpec(source=f"{user_module}:pair_splits"), seed=0)
    assert ids(data.test) == list(OFFICIAL["test"])
    assert sorted(ids(data.train) + ids(data.val)) == list(OFFICIAL["train"])


def test_a_function_returning_a_split_entry(user_module):
    data = load_data(DataSpec(source=f"{user_module}:split_entry"), seed=0)
    for name in SPLITS:
        assert ids(data.split(name)) == list(OFFICIAL[name])
    assert "split" not in data.labels


def test_a_function_returning_one_pool_is_split_at_random_as_before(user_module):
    data = load_data(DataSpec(source=f"{user_module}:one_pool"), seed=0)
    assert data.sizes == {"train": 70, "val": 15, "test": 15}
    assert sorted(ids(data.train) + ids(data.val) + ids(data.test)) == list(range(100))
