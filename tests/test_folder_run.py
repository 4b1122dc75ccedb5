"""A folder in the NYUv2 layout through the command line: ``validate`` prints its manifest,
and a real ``share-search run`` streams it from disk with a loader worker per trial,
exports the best, and keeps every trial's config small (the data travels by path)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pandas as pd
import pytest
import yaml

from share_search.cli import main
from tests.data.folder_fixture import CLASSES, write_nyuv2
from tests.runs import REPO

SPEC = {
    "name": "nyu-stream",
    "seed": 0,
    "data": {
        "source": "./nyuv2",
        "fields": {"label": {"kind": "mask", "classes": CLASSES}},
        "in_memory": False,
        "val_fraction": 0.25,
        "loader": {"num_workers": 1},
    },
    "tasks": {
        "scene": {"label": "label", "reduce": "mode"},
        "depth": {"label": "depth", "reduce": "mean"},
        "normal": {"label": "normal", "reduce": "mean"},
    },
    "backbone": {"name": "convnet", "options": {"channels": [4, 8], "hidden": 16}},
    "families": {"tree": {}},
    "train": {"epochs": 2, "batch_size": 4, "lr": 0.01},
    "search": {"sampler": "random", "objective": "per_task", "trials": 3, "concurrency": 1, "resources": {"cpu": 2}, "export_top": 1},
}


@pytest.fixture
def spec_file(tmp_path) -> Path:
    write_nyuv2(tmp_path / "nyuv2", n_train=12, n_val=4)
    path = tmp_path / "nyu.yaml"
    path.write_text(yaml.safe_dump(SPEC, sort_keys=False))
    return path


def test_validate_prints_the_manifest_and_where_each_split_came_from(spec_file, capsys):
    assert main(["validate", str(spec_file)]) == 0
    out = capsys.readouterr().out
    assert f"data folder: {spec_file.parent / 'nyuv2'}" in out
    assert "data nyuv2: input shape (3, 24, 32); train 9, val 3, test 4" in out
    assert "  val: carved from the official train by seed 0 (25% of its rows)" in out
    assert "  test: official val, held out as test (no test given; selection uses the val carved from train): " in out
    for row in (
        "image  │ image (input)    │ (24, 32, 3) │ (3, 24, 32) │ float32",
        "label  │ mask, 13 classes │ (24, 32)    │ (24, 32)    │ float32",
        "depth  │ depth            │ (24, 32, 1) │ (1, 24, 32) │ float32",
        "normal │ normals          │ (24, 32, 3) │ (3, 24, 32) │ float32",
    ):
        assert row in out
    assert "data held: streamed from disk (data.in_memory: false)" in out
    assert "label:mode  │ multiclass │ 13" in out and "streamed, not counted" in out


def test_a_real_run_streams_the_folder_with_a_loader_worker(spec_file, tmp_path, capsys, ray_session):
    out = tmp_path / "runs" / "nyu-stream"
    assert main(["run", str(spec_file), "--out", str(out), "--quiet"]) == 0
    board = pd.read_csv(out / "leaderboard.csv")
    assert (board["state"] == "COMPLETE").sum() == 3, board[["trial", "state", "fail_reason"]]
    log = (out / "run.log").read_text()
    assert f"data folder {spec_file.parent / 'nyuv2'}: streamed from disk (data.in_memory: false)" in log
    metrics = json.loads((out / "export" / "rank-1" / "metrics.json").read_text())
    assert set(metrics["test"]) == {"scene", "depth", "normal"} and metrics["test"]["depth"]["mae"] > 0
    configs = list((out / "ray").rglob("params.json"))
    assert len(configs) == 3
    assert max(p.stat().st_size for p in configs) < 10_000  # the plan only: the data reaches a trial by path
    assert sum(p.stat().st_size for p in (spec_file.parent / "nyuv2").rglob("*.npy")) > 300_000


def test_the_nyuv2_example_validates_on_a_folder_in_its_layout(tmp_path, capsys):
    """search_spaces/nyuv2.yaml, beside a (small) folder in the layout it names."""
    shutil.copy(REPO / "search_spaces" / "nyuv2.yaml", tmp_path / "nyuv2.yaml")
    write_nyuv2(tmp_path / "nyuv2", n_train=12, n_val=4)
    assert main(["validate", str(tmp_path / "nyuv2.yaml")]) == 0
    out = capsys.readouterr().out
    assert "data nyuv2: input shape (3, 24, 32); train 11, val 1, test 4" in out
    assert "label  │ mask, 13 classes" in out and "normal │ normals" in out and "image  │ image (input)" in out
    assert "data held: streamed from disk (data.augment draws anew every epoch)" in out
