"""The spec: defaults, searchable values, and an error that names the key path for each bad input."""

import copy

import pytest

from share_search.errors import SpecError
from share_search.spec.model import Param, load_spec, parse_spec

GOOD = {
    "name": "t",
    "data": {"source": "digits"},
    "tasks": {"digit": {"metric": "accuracy"}, "odd": None},
    "families": {"tree": {}},
}


def with_change(path: str, value):
    """GOOD with one key replaced (dotted path); value DELETE removes the key."""
    spec = copy.deepcopy(GOOD)
    *parents, last = path.split(".")
    node = spec
    for p in parents:
        node = node.setdefault(p, {})
    if value is DELETE:
        del node[last]
    else:
        node[last] = value
    return spec


DELETE = object()

BAD = [
    # (dotted key to change, new value, expected path, words in the message)
    ("tasks.digit.metric", "acuracy", "tasks.digit.metric", "unknown metric 'acuracy' (known: accuracy, balanced_accuracy, f1, auc, mae, rmse, r2, miou, pixel_accuracy, abs_err, rel_err, mean_angle, median_angle, within_11_25, within_22_5, within_30, iou, f_score)"),
    ("data.bogus", 1, "data.bogus", "unknown key 'bogus' (known: source, inputs"),
    ("bogus", 1, "bogus", "unknown key 'bogus'"),
    ("name", DELETE, "name", "required key is missing"),
    ("data", DELETE, "data", "required key is missing"),
    ("name", "my run", "name", "letters, digits"),
    ("tasks", {"only": None}, "tasks", "at least 2 tasks, got 1"),
    ("tasks.digit", {"type": "binary", "metric": "mae"}, "tasks.digit", "metric 'mae' does not fit a binary task"),
    ("tasks.digit.type", "ranking", "tasks.digit.type", "'multiclass', 'binary', 'regression', 'segmentation', 'depth', 'normals' or 'binary_dense'"),
    ("families", {}, "families", "needs at least one sharing family"),
    ("families", {"stitch": {}}, "families.stitch", "unknown family 'stitch' (known: tree"),
    ("families", {"tree": {"first_stage_shared": "maybe"}}, "families.tree.first_stage_shared", "got 'maybe'"),
    ("train.lr", {"low": 0.1, "high": 0.01}, "train.lr", "low < high, got low=0.1, high=0.01"),
    ("train.lr", -1.0, "train.lr", "must be > 0, got -1.0"),
    ("train.weight_decay", {"low": 0.0, "high": 0.1, "log": True}, "train.weight_decay", "log range needs low > 0, got low=0.0"),
    ("train.epochs", "ten", "train.epochs", "expected an integer, got 'ten'"),
    ("train.optimizer", "adamw", "train.optimizer", "unknown value 'adamw' (known: adam, sgd)"),
    ("train.weighting", ["equal", "magic"], "train.weighting", "unknown value 'magic' (known: equal, uncertainty, dwa, gradnorm, pcgrad)"),
    ("train.batch_size", [], "train.batch_size", "at least one value"),
    ("search.trials", -3, "search.trials", "greater than 0, got -3"),
    ("search.sampler", "bayes", "search.sampler", "'tpe', 'random', 'nsga2' or 'grid', got 'bayes'"),
    ("search.objective", "mean", "search.objective", "'delta_m' or 'per_task', got 'mean'"),
    ("search.resources.gpu", -0.5, "search.resources.gpu", "greater than or equal to 0, got -0.5"),
    ("search.scheduler", {"type": "asha", "reduction_factor": 1}, "search.scheduler.reduction_factor", "greater than 1, got 1"),
    ("data.val_fraction", 0.7, "data.val_fraction", "less than 0.5, got 0.7"),
    ("train.threads", 0, "train.threads", "greater than 0, got 0"),
]


@pytest.mark.parametrize("key,value,path,words", BAD, ids=[f"{b[0]}=" + ("<deleted>" if b[1] is DELETE else repr(b[1])) for b in BAD])
def test_bad_spec_names_key_path_and_value(key, value, path, words):
    with pytest.raises(SpecError) as info:
        parse_spec(with_change(key, value))
    assert info.value.path == path
    assert words in info.value.message, info.value.message
    assert str(info.value).startswith(path + ": ")


def test_scheduler_needs_single_objective():
    spec = with_change("search", {"objective": "per_task", "scheduler": {"type": "asha"}})
    with pytest.raises(SpecError, match=r"^search: an ASHA scheduler needs one scalar objective"):
        parse_spec(spec)


def test_defaults_are_filled_and_models_frozen():
    spec = parse_spec(GOOD)
    assert spec.seed == 0
    assert spec.backbone.name == "mlp"
    assert spec.train.lr == Param("fixed", value=1e-3)
    assert spec.search.sampler == "tpe" and spec.search.objective == "delta_m"
    assert spec.tasks["odd"].metric is None  # resolved later from the label type
    with pytest.raises(Exception):
        spec.name = "other"


def test_searchable_values_fixed_choice_range():
    spec = parse_spec(with_change("train", {"lr": {"low": 1e-4, "high": 1e-2, "log": True}, "epochs": [2, 4], "weighting": ["pcgrad"]}))
    assert spec.train.lr.kind == "range" and spec.train.lr.log
    assert spec.train.epochs.kind == "choice" and spec.train.epochs.choices == (2, 4)
    assert spec.train.weighting == Param("fixed", value="pcgrad")  # a one-element list is fixed
    assert set(spec.train.searched()) == {"lr", "epochs"}
    assert spec.train.epochs.grid_values() == (2, 4)
    assert spec.train.lr.default() == pytest.approx(1e-3)  # geometric midpoint of a log range


def test_round_trip_through_yaml(tmp_path):
    spec = parse_spec(with_change("train", {"lr": [0.01, 0.001], "batch_size": {"low": 16, "high": 64}}))
    path = tmp_path / "s.yaml"
    path.write_text(spec.to_yaml())
    assert load_spec(path) == spec


@pytest.mark.parametrize(
    "text,words",
    [
        ("name: [unclosed\n", "malformed YAML at line"),
        ("", "the file is empty"),
        ("- a\n- b\n", "the top level must be a mapping"),
    ],
)
def test_bad_files(tmp_path, text, words):
    path = tmp_path / "s.yaml"
    path.write_text(text)
    with pytest.raises(SpecError, match=words):
        load_spec(path)


def test_missing_file_is_named(tmp_path):
    with pytest.raises(SpecError, match="spec file not found: .*nope.yaml"):
        load_spec(tmp_path / "nope.yaml")


def test_with_search_overrides_and_revalidates():
    spec = parse_spec(GOOD)
    assert spec.with_search(trials=5, concurrency=None).search.trials == 5
    with pytest.raises(SpecError, match="search.trials"):
        spec.with_search(trials=0)
