"""Every bad data input fails with an error that names the key, file, column or label at fault."""

from __future__ import annotations

import gzip

import numpy as np
import pandas as pd
import pytest

from share_search.data import load_data
from share_search.errors import DataError, SpecError
from share_search.spec.model import DataSpec

USER_MODULE = '''
import numpy as np

def wrong_type():
    return [1, 2, 3]

def object_label():  # text labels are class names now; objects of other kinds are not labels
    return {"x": np.zeros((10, 2)), "y": [{"a": 1}] * 10}

def pair():
    return np.zeros((10, 2)), {"y": np.arange(10) % 2}

def bad_names():
    return np.zeros((10, 2)), {3: np.arange(10) % 2}
'''


def npz(tmp_path, **arrays) -> str:
    path = tmp_path / "d.npz"
    np.savez(path, **arrays)
    return str(path)


def csv(tmp_path, text: str) -> str:
    path = tmp_path / "d.csv"
    path.write_text(text)
    return str(path)


def module(tmp_path, monkeypatch) -> str:
    (tmp_path / "share_search_test_baddata.py").write_text(USER_MODULE)
    monkeypatch.chdir(tmp_path)
    return "share_search_test_baddata"


def bad_fashion(tmp_path) -> str:
    for name in ("train-images-idx3", "train-labels-idx1", "t10k-images-idx3", "t10k-labels-idx1"):
        with gzip.open(tmp_path / f"{name}-ubyte.gz", "wb") as f:
            f.write(b"\x08\x03\x00\x00 not an idx file")
    return str(tmp_path)


X10 = np.arange(20.0).reshape(10, 2)
Y10 = np.arange(10) % 2
TABLE = "a,b,y\n" + "".join(f"{i},{i * 2},{i % 2}\n" for i in range(10))

# id, make(tmp_path, monkeypatch) -> (DataSpec kwargs, seed), error type, SpecError path, message fragments
CASES = [
    ("unknown-source", lambda t, m: ({"source": "digitz"}, 0), SpecError, "data.source",
     ["unknown data source 'digitz' (known: adult, digits, fashion, multimnist, multimnist_dense, or a .npz/.csv/.parquet file, module:function, or a folder path such as ./nyuv2)"]),
    ("negative-seed", lambda t, m: ({"source": "digits"}, -1), SpecError, "seed", ["must be an integer >= 0, got -1"]),
    ("builtin-unknown-option", lambda t, m: ({"source": "digits", "options": {"foo": 1}}, 0), SpecError,
     "data.options.foo", ["unknown option 'foo' for data source 'digits' (known: none)"]),
    ("pairs-not-a-mapping", lambda t, m: ({"source": "multimnist", "options": {"pairs": 5}}, 0), SpecError,
     "data.options.pairs", ["expected a mapping like {train: 6000, val: 1000, test: 1000}, got 5"]),
    ("pairs-zero", lambda t, m: ({"source": "multimnist", "options": {"pairs": {"train": 0}}}, 0), SpecError,
     "data.options.pairs.train", ["must be an integer >= 1, got 0"]),
    ("pairs-unknown-split", lambda t, m: ({"source": "multimnist", "options": {"pairs": {"dev": 5}}}, 0), SpecError,
     "data.options.pairs.dev", ["unknown split 'dev' (known: train, val, test)"]),
    ("fashion-root-type", lambda t, m: ({"source": "fashion", "options": {"root": 3}}, 0), SpecError,
     "data.options.root", ["expected a folder path, got 3"]),
    ("fashion-missing", lambda t, m: ({"source": "fashion", "options": {"root": str(t)}}, 0), DataError, None,
     ["Fashion-MNIST not found in", "train-images-idx3-ubyte.gz", "apt-get install dataset-fashion-mnist"]),
    ("fashion-corrupt", lambda t, m: ({"source": "fashion", "options": {"root": bad_fashion(t)}}, 0), DataError, None,
     ["train-images-idx3-ubyte.gz: not an unsigned-byte IDX file"]),
    ("file-missing", lambda t, m: ({"source": str(t / "nope.csv"), "inputs": ["a"]}, 0), DataError, None,
     ["nope.csv: data file not found"]),
    ("file-options", lambda t, m: ({"source": csv(t, TABLE), "inputs": ["a"], "options": {"sep": ";"}}, 0), SpecError,
     "data.options.sep", ["unknown option 'sep': a .csv source takes no options"]),
    ("csv-no-inputs", lambda t, m: ({"source": csv(t, TABLE)}, 0), SpecError, "data.inputs",
     ["required for a .csv file: list the input columns"]),
    ("csv-input-missing", lambda t, m: ({"source": csv(t, TABLE), "inputs": ["q"]}, 0), DataError, None,
     ["d.csv: input column 'q' not found (columns: a, b, y)"]),
    ("csv-input-nan", lambda t, m: ({"source": csv(t, TABLE.replace("\n3,", "\n,").replace("\n5,", "\n,")),
                                     "inputs": ["a", "b"]}, 0), DataError, None,
     ["d.csv: input column 'a' has 2 empty or NaN cell(s)"]),
    ("csv-input-text", lambda t, m: ({"source": csv(t, "a,y\nx,0\nz,1\n"), "inputs": ["a"]}, 0), DataError, None,
     ["d.csv: input column 'a' is not numeric"]),
    ("csv-unreadable", lambda t, m: ({"source": csv(t, ""), "inputs": ["a"]}, 0), DataError, None,
     ["d.csv: cannot read as .csv"]),
    ("npz-no-input", lambda t, m: ({"source": npz(t, pixels=X10, y=Y10)}, 0), DataError, None,
     ["d.npz: no input array 'x' (arrays: pixels, y)"]),
    ("npz-two-inputs", lambda t, m: ({"source": npz(t, x=X10, y=Y10), "inputs": ["x", "y"]}, 0), SpecError,
     "data.inputs", ["a .npz file has one input array: give one key, got ['x', 'y']"]),
    ("npz-wrong-length", lambda t, m: ({"source": npz(t, x=X10, y=Y10[:9])}, 0), DataError, None,
     ["d.npz: label 'y' has 9 rows but input 'x' has 10 rows"]),
    ("npz-input-nan", lambda t, m: ({"source": npz(t, x=np.where(X10 == 4, np.nan, X10), y=Y10)}, 0), DataError, None,
     ["d.npz: input 'x' has 1 NaN or infinite value(s)"]),
    ("npz-no-labels", lambda t, m: ({"source": npz(t, x=X10)}, 0), DataError, None,
     ["d.npz: no labels besides the input 'x'"]),
    ("label-3d", lambda t, m: ({"source": npz(t, x=X10, y=np.zeros((10, 2, 2)))}, 0), DataError, None,
     ["label 'y' has shape (10, 2, 2); a label is (N,) or (N, k)"]),
    ("label-constant", lambda t, m: ({"source": npz(t, x=X10, y=np.full(10, 3.0))}, 0), DataError, None,
     ["label 'y' is 3 in every labelled row, nothing to learn"]),
    ("label-empty", lambda t, m: ({"source": npz(t, x=X10, y=np.full(10, np.nan))}, 0), DataError, None,
     ["label 'y' has no values (every row is missing)"]),
    ("label-infinite", lambda t, m: ({"source": npz(t, x=X10, y=np.array([np.inf] + [0.5] * 9))}, 0), DataError, None,
     ["label 'y' has 1 infinite value(s)"]),
    ("too-few-rows", lambda t, m: ({"source": npz(t, x=X10[:2], y=Y10[:2])}, 0), SpecError, "data",
     ["2 rows cannot fill train, val and test"]),
    ("module-missing", lambda t, m: ({"source": "share_search_no_such_module:load"}, 0), SpecError, "data.source",
     ["cannot import module 'share_search_no_such_module'"]),
    ("module-no-function", lambda t, m: ({"source": f"{module(t, m)}:nothing"}, 0), SpecError, "data.source",
     ["module 'share_search_test_baddata' has no function 'nothing'"]),
    ("module-wrong-return", lambda t, m: ({"source": f"{module(t, m)}:wrong_type"}, 0), DataError, None,
     ["share_search_test_baddata:wrong_type: must return {'x': inputs, '<label>': array, ...}", "got list"]),
    ("module-object-label", lambda t, m: ({"source": f"{module(t, m)}:object_label"}, 0), DataError, None,
     ["share_search_test_baddata:object_label: label 'y' holds dict values; a label is numbers or text"]),
    ("module-pair-with-inputs", lambda t, m: ({"source": f"{module(t, m)}:pair", "inputs": ["x"]}, 0), SpecError,
     "data.inputs", ["returns (inputs, labels), so data.inputs has nothing to pick"]),
    ("module-label-names", lambda t, m: ({"source": f"{module(t, m)}:bad_names"}, 0), DataError, None,
     ["label names are strings, got 3"]),
]  # fmt: skip


@pytest.mark.parametrize("make, error, path, fragments", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_error_names_what_is_wrong(make, error, path, fragments, tmp_path, monkeypatch):
    kwargs, seed = make(tmp_path, monkeypatch)
    with pytest.raises(error) as info:
        load_data(DataSpec(**kwargs), seed=seed)
    message = str(info.value)
    for fragment in fragments:
        assert fragment in message
    assert "{}" not in message and "\n" not in message
    if error is SpecError:
        assert info.value.path == path


def test_unreadable_npz_names_the_file(tmp_path):
    path = tmp_path / "d.npz"
    path.write_bytes(b"not a zip")
    with pytest.raises(DataError, match="d.npz: cannot read as .npz"):
        load_data(DataSpec(source=str(path)), seed=0)


def test_unreadable_parquet_names_the_file(tmp_path):
    path = tmp_path / "d.parquet"
    pd.DataFrame({"a": [1]}).to_csv(path)
    with pytest.raises(DataError, match="d.parquet: cannot read as .parquet"):
        load_data(DataSpec(source=str(path), inputs=["a"]), seed=0)
