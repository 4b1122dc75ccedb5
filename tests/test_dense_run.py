"""The NYUv2 example (search_spaces/nyuv2.yaml) end to end on a small folder in its layout:
a real ``share-search run`` of its dense task set (13-class segmentation, depth, normals,
DeepLab heads, all_metrics Δm, augmentation) with a tiny encoder in place of the dilated
ResNet-50; the leaderboard ranks on Δm over every per-pixel metric, the export's model card
lists them, and ``load_model`` gives outputs at the input's spatial size.

Run it under the Ray lock: ``flock /tmp/share-search-ray.lock python -m pytest -q tests/test_dense_run.py``.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Sequence

import pandas as pd
import pytest
import torch
import yaml
from torch import nn

from share_search.cli import main
from tests.data.folder_fixture import CLASSES, SMALL_SIZE, write_nyuv2
from tests.runs import REPO

PER_PIXEL_METRICS = {
    "segmentation": {"miou", "pixel_accuracy"},
    "depth": {"abs_err", "rel_err"},
    "normal": {"mean_angle", "median_angle", "within_11_25", "within_22_5", "within_30"},
}


def tiny_encoder(input_shape: Sequence[int], channels: Sequence[int] = (8, 16)) -> list[nn.Module]:
    """Two strided convolution stages (1/2, then 1/4 of the input): a feature map for the dense heads."""
    stages, c = [], input_shape[0]
    for out in channels:
        stages.append(nn.Sequential(nn.Conv2d(c, out, 3, stride=2, padding=1, bias=False), nn.BatchNorm2d(out), nn.ReLU()))
        c = out
    return stages


def example_with_a_tiny_encoder(folder: Path) -> dict:
    """search_spaces/nyuv2.yaml as shipped, but small enough for two CPU cores: a tiny encoder and
    narrow heads (rates as shipped), few samples, trials and epochs, no loader process."""
    spec = yaml.safe_load((REPO / "search_spaces" / "nyuv2.yaml").read_text())
    spec["data"].update(source=str(folder), val_fraction=0.25, loader={"num_workers": 0})
    spec["backbone"] = {"name": "tests.test_dense_run:tiny_encoder", "options": {"channels": [8, 16]}}
    for task in spec["tasks"].values():
        task["head"] = task["head"] | {"channels": 8}
    spec["train"].update(lr=0.01, encoder_lr_mult=1.0, epochs=2, batch_size=4, device="cpu")
    spec["search"].update(sampler="random", trials=4, resources={"cpu": 1, "gpu": 0}, export_top=1)
    return spec


def test_the_example_is_the_nyuv2_dense_task_set():
    spec = yaml.safe_load((REPO / "search_spaces" / "nyuv2.yaml").read_text())
    assert {name: (t["label"], t.get("reduce")) for name, t in spec["tasks"].items()} == {
        "segmentation": ("label", None), "depth": ("depth", None), "normal": ("normal", None),
    }  # fmt: skip
    assert {name: {t["metric"], *t["extra_metrics"]} for name, t in spec["tasks"].items()} == PER_PIXEL_METRICS
    assert all(t["head"]["name"] == "deeplab" for t in spec["tasks"].values())
    assert spec["data"]["fields"]["label"] == {"kind": "mask", "classes": 13}
    assert spec["backbone"]["name"] == "resnet50" and spec["backbone"]["options"]["output_stride"] in (8, 16)
    assert "weights" not in spec["backbone"] and "# weights: " in (REPO / "search_spaces" / "nyuv2.yaml").read_text()
    assert spec["search"]["delta_m"] == "all_metrics" and spec["data"]["augment"]


def test_a_real_run_of_the_example_ranks_and_exports_the_dense_tasks(tmp_path, capsys, ray_session):
    folder = write_nyuv2(tmp_path / "nyuv2", n_train=16, n_val=4)
    spec_file = tmp_path / "nyuv2.yaml"
    spec_file.write_text(yaml.safe_dump(example_with_a_tiny_encoder(folder), sort_keys=False))
    out = tmp_path / "runs" / "nyuv2"

    assert main(["run", str(spec_file), "--out", str(out), "--quiet"]) == 0

    board = pd.read_csv(out / "leaderboard.csv")
    assert (board["state"] == "COMPLETE").all(), board[["trial", "state", "fail_reason"]]
    for task, metrics in PER_PIXEL_METRICS.items():
        for metric in metrics:
            assert board[f"val.{task}.{metric}"].notna().all(), (task, metric)
    assert len(board[board["role"].isna()]) == 2  # searched, beside the two references
    assert board["delta_m"].map(math.isfinite).all() and board.loc[board["baseline"], "delta_m"].tolist() == [0.0]
    assert list(board["rank"].dropna()) == sorted(board["rank"].dropna())
    assert "every metric of each task" in (out / "run.log").read_text()

    export = out / "export" / "rank-1"
    metrics = json.loads((export / "metrics.json").read_text())
    assert {task: set(values) for task, values in metrics["test"].items()} == PER_PIXEL_METRICS
    card = (export / "MODEL_CARD.md").read_text()
    assert all(metric in card for metrics in PER_PIXEL_METRICS.values() for metric in metrics)

    import share_search as ss

    model = ss.load_model(export, trust_code=True)
    x = torch.rand(2, 3, *SMALL_SIZE)
    with torch.no_grad():
        outputs = model(x)
    assert {name: tuple(y.shape) for name, y in outputs.items()} == {
        "segmentation": (2, CLASSES, *SMALL_SIZE), "depth": (2, 1, *SMALL_SIZE), "normal": (2, 3, *SMALL_SIZE),
    }  # fmt: skip
    larger = (40, 56)  # an image of another size: the dense heads upsample to it
    with torch.no_grad():
        outputs = model(torch.rand(1, 3, *larger))
    assert {tuple(y.shape[-2:]) for y in outputs.values()} == {larger}
    assert {t.name: t.type for t in model.tasks} == {"segmentation": "segmentation", "depth": "depth", "normal": "normals"}
