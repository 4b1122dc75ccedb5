"""Columns of user files: only the labels the tasks use are checked, and text labels are classes.

A file often carries columns no task uses (ids, notes, a constant, an empty or infinite
measurement); they must not stop the file from loading. Text labels (``cat``/``dog``) are
class names: numbered in sorted order, kept as the task's class names, empty cells missing.
"""

from __future__ import annotations

import json
import re

import numpy as np
import pandas as pd
import pytest
import yaml
from sklearn.datasets import load_digits

from share_search.cli import main
from share_search.data import load_data
from share_search.errors import DataError, SpecError
from share_search.train.problem import load_problem
from share_search.spec.model import DataSpec, parse_spec

N = 120
PIXELS = [f"p{i}" for i in range(4)]


def frame(n: int = N) -> pd.DataFrame:
    """Four inputs, two text labels, one numeric label, and four columns no task should need."""
    gen = np.random.default_rng(0)
    animal = np.where(np.arange(n) % 2 == 0, "dog", "cat").astype(object)
    animal[[4, 9]] = None  # empty cells: missing labels
    return pd.DataFrame(
        {
            **{p: gen.normal(size=n) for p in PIXELS},
            "animal": animal,
            "size": np.array(["small", "medium", "large"])[np.arange(n) % 3],
            "score": gen.normal(size=n),
            "empty": np.full(n, np.nan),
            "constant": np.full(n, 3.0),
            "spike": np.where(np.arange(n) == 5, np.inf, 1.0 * np.arange(n)),
            "note": [f"row {i}" for i in range(n)],
        }
    )


def spec_of(source: str, tasks: dict, inputs=PIXELS, **data) -> dict:
    return {
        "name": "columns",
        "data": {"source": source, "inputs": inputs, **data},
        "tasks": tasks,
        "backbone": {"name": "mlp", "options": {"widths": [16]}},
        "families": {"tree": {}},
    }


@pytest.fixture
def csv_path(tmp_path):
    path = tmp_path / "animals.csv"
    frame().to_csv(path, index=False)
    assert ",," in path.read_text()  # the missing animals are empty cells
    return path


# --------------------------------------------------------------------------- unused columns
def test_unused_nan_constant_and_infinite_columns_do_not_stop_the_file(csv_path, tmp_path, capsys):
    path = tmp_path / "spec.yaml"
    raw = spec_of(str(csv_path), {"score": {}, "size": {}})
    path.write_text(yaml.safe_dump(raw))
    assert main(["validate", str(path)]) == 0, capsys.readouterr().err
    problem = load_problem(parse_spec(raw))
    assert set(problem.data.labels) == {"score", "size"}
    assert set(problem.data.unused_labels) == {"animal", "empty", "constant", "spike", "note"}
    assert "columns no task uses" in problem.data.description


@pytest.mark.parametrize(
    "column, message",
    [
        ("empty", "label 'empty' has no values (every row is missing)"),
        ("constant", "label 'constant' is 3 in every labelled row"),
        ("spike", "label 'spike' has 1 infinite value(s)"),
        ("note", "text label 'note' has 120 distinct values; text is read as class names, at most 100 classes"),
    ],
)
def test_a_column_a_task_uses_is_still_checked(csv_path, column, message):
    with pytest.raises(DataError, match=message.replace("(", r"\(").replace(")", r"\)")):
        load_problem(parse_spec(spec_of(str(csv_path), {"t": {"label": column}, "score": {}})))


def test_a_missing_label_lists_every_column_the_file_offers(csv_path):
    with pytest.raises(SpecError) as info:
        load_problem(parse_spec(spec_of(str(csv_path), {"animl": {}, "score": {}})))
    assert info.value.path == "tasks.animl.label"
    assert "has no label 'animl' (labels: animal, constant, empty, note, score, size, spike)" in str(info.value)


def test_an_unused_npz_array_is_not_read(tmp_path):
    path = tmp_path / "d.npz"
    np.savez(path, x=np.arange(40.0).reshape(20, 2), y=np.arange(20) % 2, junk=np.full(20, np.inf), same=np.ones(20))
    data = load_data(DataSpec(source=str(path)), seed=0, labels={"y"})
    assert set(data.labels) == {"y"} and set(data.unused_labels) == {"junk", "same"}
    with pytest.raises(DataError, match="label 'junk' has 20 infinite value"):
        load_data(DataSpec(source=str(path)), seed=0)  # without the tasks' labels, every array is checked


def test_module_function_labels_no_task_uses_are_not_checked(tmp_path, monkeypatch):
    (tmp_path / "share_search_test_columns.py").write_text(
        "import numpy as np\n"
        "def load():\n"
        "    return np.zeros((20, 2)), {'y': np.arange(20) % 2, 'junk': np.full(20, np.nan), 'obj': [{'a': 1}] * 20}\n"
    )
    monkeypatch.chdir(tmp_path)
    data = load_data(DataSpec(source="share_search_test_columns:load"), seed=0, labels={"y"})
    assert set(data.labels) == {"y"} and set(data.unused_labels) == {"junk", "obj"}


# --------------------------------------------------------------------------- text labels
def check_animals(problem) -> None:
    """animal: binary cat/dog with the empty cells missing; size: three classes in sorted order."""
    tasks = {t.name: t for t in problem.tasks}
    assert (tasks["animal"].type, tasks["animal"].class_names) == ("binary", ("cat", "dog"))
    assert (tasks["size"].type, tasks["size"].n_outputs, tasks["size"].class_names) == ("multiclass", 3, ("large", "medium", "small"))
    source = frame()
    row_of = {v: i for i, v in enumerate(source["p0"].to_numpy(dtype=np.float32))}  # p0 is unique per row
    for split in ("train", "val", "test"):
        s = problem.data.split(split)
        rows = np.array([row_of[v] for v in s.x[:, 0]])
        expected = np.array([{"cat": 0.0, "dog": 1.0}.get(a, np.nan) for a in source["animal"].to_numpy()[rows]])
        np.testing.assert_array_equal(s.y["animal"], expected)
        np.testing.assert_array_equal(s.y["size"], [{"large": 0, "medium": 1, "small": 2}[v] for v in source["size"].to_numpy()[rows]])
    assert sum(int(np.isnan(problem.data.split(s).y["animal"]).sum()) for s in ("train", "val", "test")) == 2


def test_text_labels_in_a_csv_are_classes_with_their_names(csv_path, tmp_path, capsys):
    raw = spec_of(str(csv_path), {"animal": {}, "size": {}})
    check_animals(load_problem(parse_spec(raw)))
    path = tmp_path / "spec.yaml"
    path.write_text(yaml.safe_dump(raw))
    assert main(["validate", str(path)]) == 0, capsys.readouterr().err
    assert "binary" in capsys.readouterr().out


def test_text_labels_in_a_parquet_file(tmp_path):
    path = tmp_path / "animals.parquet"
    frame().to_parquet(path)
    check_animals(load_problem(parse_spec(spec_of(str(path), {"animal": {}, "size": {}}))))


def test_text_labels_in_an_npz_file_as_str_arrays(tmp_path):
    source = frame()
    path = tmp_path / "animals.npz"
    animal = source["animal"].fillna("").to_numpy(dtype=str)  # an empty string is a missing label
    np.savez(path, x=source[PIXELS].to_numpy(), animal=animal, size=source["size"].to_numpy(dtype=str))
    check_animals(load_problem(parse_spec(spec_of(str(path), {"animal": {}, "size": {}}, inputs=None))))


def test_an_npz_object_array_is_refused_without_unpickling(tmp_path):
    path = tmp_path / "animals.npz"
    np.savez(path, x=np.zeros((20, 2)), animal=np.array(["cat", "dog"] * 10, dtype=object), y=np.arange(20) % 2, z=np.arange(20) % 3)
    with pytest.raises(DataError, match="array 'animal' holds Python objects, which load only by unpickling"):
        load_problem(parse_spec(spec_of(str(path), {"animal": {}, "y": {}}, inputs=None)))
    assert load_problem(parse_spec(spec_of(str(path), {"y": {}, "z": {}}, inputs=None))).tasks[0].type == "binary"


@pytest.mark.parametrize(
    "n, values, message",
    [
        (0, "np.array(['cat', 1] * 10, dtype=object)", "label 'y' mixes text and numbers (e.g. 'cat' and 1); give every class as text"),
        (1, "[True, None, False, 1.0] * 5", None),  # numbers with gaps: a binary label, 5 missing
        (2, "[b'cat', b'dog'] * 10", "label 'y' is neither numbers nor text (dtype |S3)"),
        (3, "[{'a': 1}, 'cat'] * 10", "label 'y' holds dict values; a label is numbers or text"),
    ],
)
def test_labels_returned_by_user_code_as_objects(n, values, message, tmp_path, monkeypatch):
    (tmp_path / f"share_search_test_objects{n}.py").write_text(f"import numpy as np\ndef load():\n    return np.zeros((20, 2)), {{'y': {values}}}\n")
    monkeypatch.chdir(tmp_path)
    spec = DataSpec(source=f"share_search_test_objects{n}:load")
    if message is None:
        data = load_data(spec, seed=0)
        assert data.labels["y"].kind == "binary" and sum(int(np.isnan(data.split(s).y["y"]).sum()) for s in ("train", "val", "test")) == 5
    else:
        with pytest.raises(DataError, match=re.escape(message)):
            load_data(spec, seed=0)


def test_a_text_label_cannot_be_regression(csv_path):
    with pytest.raises(SpecError, match="label 'animal' is binary; type 'regression' does not fit it"):
        load_problem(parse_spec(spec_of(str(csv_path), {"animal": {"type": "regression"}, "score": {}})))


# --------------------------------------------------------------------------- a real run
def test_a_search_on_text_labels_names_the_classes_in_the_model_card_and_report(tmp_path, ray_session, capsys):
    """Digits as a table whose labels are words, with junk columns beside them: the search runs,
    and the exported model card and the report say which output is which class."""
    digits = load_digits()
    table = pd.DataFrame(digits.data, columns=[f"px{i}" for i in range(64)])
    table["parity"] = np.where(digits.target % 2 == 0, "even", "odd")
    table["size"] = np.array(["small", "medium", "large"])[np.digitize(digits.target, [3, 7])]
    table.loc[::7, "parity"] = ""
    table["empty"] = np.nan
    table["constant"] = 1.0
    csv = tmp_path / "digits.csv"
    table.to_csv(csv, index=False)
    raw = spec_of(str(csv), {"parity": {}, "size": {}}, inputs=[f"px{i}" for i in range(64)], max_samples=300)
    raw.update(train={"epochs": 1, "lr": 0.01, "batch_size": 32}, search={"sampler": "random", "trials": 3, "concurrency": 1, "export_top": 1})
    path = tmp_path / "spec.yaml"
    path.write_text(yaml.safe_dump(raw))
    run = tmp_path / "run"
    assert main(["run", str(path), "--out", str(run), "--quiet"]) == 0, capsys.readouterr().err
    recipe = json.loads((run / "export" / "rank-1" / "recipe.json").read_text())
    assert {t["name"]: t["class_names"] for t in recipe["tasks"]} == {"parity": ["even", "odd"], "size": ["large", "medium", "small"]}
    card = (run / "export" / "rank-1" / "MODEL_CARD.md").read_text()
    assert "- parity: even, odd" in card and "- size: large, medium, small" in card
    assert main(["report", str(run)]) == 0
    page = (run / "report.html").read_text()
    assert "classes even, odd" in page and "classes large, medium, small" in page
