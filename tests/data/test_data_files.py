"""User data: .npz, .csv, .parquet and module:function round-trip, kinds inferred, NaN kept."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from share_search.data import load_data
from share_search.data import SPLITS
from share_search.spec.model import DataSpec

torch.set_num_threads(1)

N = 120
USER_MODULE = '''
import numpy as np
import torch

def as_dict(n=40):
    x = np.arange(n * 2, dtype=np.float64).reshape(n, 2)
    return {"x": x, "parity": np.arange(n) % 2, "size": torch.linspace(0, 1, n) ** 2}

def as_tuple(n=40):
    x = torch.arange(n, dtype=torch.float32).reshape(n, 1, 1)
    return x, {"cls": (np.arange(n) % 3).tolist()}

def wrong_type():
    return [1, 2, 3]

def text_label():
    return {"x": np.zeros((10, 2)), "y": np.array(["a", "b"] * 5)}
'''


def reassemble(data, label) -> np.ndarray:
    """The label of all rows, put back in source order by the id in input feature 0."""
    ids = np.concatenate([data.split(s).x.reshape(len(data.split(s)), -1)[:, 0] for s in SPLITS]).astype(int)
    values = np.concatenate([data.split(s).y[label] for s in SPLITS])
    assert sorted(ids) == list(range(N))  # every row once: splits are disjoint and complete
    out = np.empty_like(values)
    out[ids] = values
    return out


def source_labels():
    gen = np.random.default_rng(0)
    cls = (np.arange(N) % 3 * 2 + 2).astype(float)  # 2, 4, 6 -> classes 0, 1, 2
    flag = np.where(np.arange(N) % 2 == 0, -1.0, 1.0)  # -1 / 1 -> 0 / 1
    cls[[3, 10]] = np.nan  # missing labels
    return {"cls": cls, "flag": flag, "reg": gen.normal(size=N), "count": np.arange(N) * 7}


def check_round_trip(data):
    labels = source_labels()
    info = data.labels
    assert (info["cls"].kind, info["cls"].n_outputs, info["cls"].class_names) == ("multiclass", 3, ("2", "4", "6"))
    assert (info["flag"].kind, info["flag"].n_outputs, info["flag"].class_names) == ("binary", 1, ("-1", "1"))
    assert info["reg"].kind == "regression" and info["count"].kind == "regression"  # count: > 100 distinct values
    cls = reassemble(data, "cls")
    assert np.isnan(cls[[3, 10]]).all() and np.isnan(cls).sum() == 2
    np.testing.assert_array_equal(cls[~np.isnan(cls)], (labels["cls"][~np.isnan(cls)] - 2) / 2)
    np.testing.assert_array_equal(reassemble(data, "flag"), labels["flag"] > 0)
    np.testing.assert_allclose(reassemble(data, "reg"), labels["reg"], rtol=1e-6)
    np.testing.assert_array_equal(reassemble(data, "count"), labels["count"])
    assert data.sizes == {"train": 84, "val": 18, "test": 18}
    assert all(data.split(s).x.dtype == np.float32 for s in SPLITS)


def test_npz_round_trip_with_image_inputs_and_wide_labels(tmp_path):
    x = np.zeros((N, 1, 2, 3))
    x[:, 0, 0, 0] = np.arange(N)
    path = tmp_path / "d.npz"
    np.savez(path, x=x, vec=np.stack([np.arange(N), -np.arange(N)], axis=1) * 0.5, **source_labels())
    data = load_data(DataSpec(source=str(path)), seed=0)
    assert data.input_shape == (1, 2, 3) and data.name == "d.npz"
    check_round_trip(data)
    assert (data.labels["vec"].kind, data.labels["vec"].n_outputs) == ("regression", 2)
    assert data.train.y["vec"].shape == (84, 2)


def test_npz_input_key_from_spec_inputs(tmp_path):
    path = tmp_path / "d.npz"
    np.savez(path, pixels=np.arange(N, dtype=float), **source_labels())
    data = load_data(DataSpec(source=str(path), inputs=["pixels"]), seed=0)
    assert data.input_shape == (1,)  # 1-D inputs become one feature
    check_round_trip(data)


def table(tmp_path):
    df = pd.DataFrame({"id": np.arange(N), "b": np.linspace(0, 1, N), **source_labels(), "note": ["t"] * N})
    df["cls"] = df["cls"].astype("Int64")  # nullable integers: missing cells stay missing
    return df


def test_csv_round_trip_empty_cells_are_missing_labels(tmp_path):
    path = tmp_path / "d.csv"
    table(tmp_path).to_csv(path, index=False)
    assert ",," in path.read_text()  # the missing labels are empty cells
    data = load_data(DataSpec(source=str(path), inputs=["id", "b"]), seed=0)
    assert data.input_shape == (2,) and set(data.labels) == {"cls", "flag", "reg", "count"}
    assert "note" in data.description  # text columns are not labels
    check_round_trip(data)


def test_parquet_round_trip(tmp_path):
    path = tmp_path / "d.parquet"
    table(tmp_path).to_parquet(path)
    check_round_trip(load_data(DataSpec(source=str(path), inputs=["id", "b"]), seed=0))


def test_relative_paths_start_from_the_current_directory(tmp_path, monkeypatch):
    table(tmp_path).to_csv(tmp_path / "d.csv", index=False)
    monkeypatch.chdir(tmp_path)
    assert load_data(DataSpec(source="d.csv", inputs=["id", "b"]), seed=0).sizes["train"] == 84


@pytest.fixture
def user_module(tmp_path_factory, monkeypatch):
    folder = tmp_path_factory.getbasetemp() / "user_module"
    folder.mkdir(exist_ok=True)
    (folder / "share_search_test_userdata.py").write_text(USER_MODULE)
    monkeypatch.chdir(folder)
    return "share_search_test_userdata"


def test_module_function_returning_a_dict_of_arrays_and_tensors(user_module):
    data = load_data(DataSpec(source=f"{user_module}:as_dict", options={"n": 20}), seed=0)
    assert sum(data.sizes.values()) == 20 and data.input_shape == (2,)
    assert data.labels["parity"].kind == "binary" and data.labels["size"].kind == "regression"
    for s in SPLITS:
        split = data.split(s)
        np.testing.assert_array_equal(split.y["parity"], split.x[:, 0] / 2 % 2)


def test_module_function_returning_inputs_and_labels(user_module):
    data = load_data(DataSpec(source=f"{user_module}:as_tuple"), seed=0)
    assert data.input_shape == (1, 1) and data.labels["cls"].n_outputs == 3
    np.testing.assert_array_equal(data.val.y["cls"], data.val.x[:, 0, 0] % 3)


def test_user_data_splits_are_seeded_and_cut_by_max_samples(tmp_path):
    path = tmp_path / "d.npz"
    np.savez(path, x=np.arange(1000.0), y=np.arange(1000) % 2)
    a, b, c = (load_data(DataSpec(source=str(path)), seed=s) for s in (1, 1, 2))
    np.testing.assert_array_equal(a.val.x, b.val.x)
    assert not np.array_equal(a.val.x, c.val.x)
    small = load_data(DataSpec(source=str(path), max_samples=100), seed=1)
    assert small.sizes == {"train": 70, "val": 15, "test": 15}
    assert set(small.val.x[:, 0]) <= set(a.val.x[:, 0])  # a cut of the same split, not a new split
