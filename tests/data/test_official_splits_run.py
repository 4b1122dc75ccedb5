"""A real search on official splits given as files (train and val only, as preprocessed
NYUv2 ships them): trials select on the val carved from train, and the exported test
metrics are measured on the official val. Starts Ray: run under the shared Ray lock.

The official val's labels are the opposite of train's rule, so a model that learned train
scores high on the carved val and low on the official val: the test metric can only be low
if it was measured on the official val.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from share_search.engine.runner import run_search
from share_search.spec.model import parse_spec

pytestmark = pytest.mark.usefixtures("ray_session")


def write_split(path, n: int, seed: int, flipped: bool) -> str:
    x = np.random.default_rng(seed).normal(size=(n, 4))
    sign, big = x[:, 0] > 0, x[:, 1] > 0
    np.savez(path, x=x, sign=sign != flipped, big=big != flipped)
    return str(path)


def test_a_search_reports_test_metrics_on_the_official_val_held_out(tmp_path):
    source = {"train": write_split(tmp_path / "train.npz", 400, 0, False), "val": write_split(tmp_path / "val.npz", 100, 1, True)}
    spec = parse_spec(
        {
            "name": "held-out",
            "data": {"source": source},
            "tasks": {"sign": None, "big": None},
            "backbone": {"name": "mlp", "options": {"widths": [16]}},
            "families": {"tree": {}},
            "train": {"epochs": 4, "lr": 0.02, "batch_size": 32},
            "search": {"sampler": "random", "trials": 1, "concurrency": 1, "export_top": 1},
        }
    )
    outcome = run_search(spec, out=tmp_path / "run", show_progress=False)
    assert outcome.problem.data.sizes == {"train": 340, "val": 60, "test": 100}
    metrics = json.loads((outcome.run_dir / "export" / "rank-1" / "metrics.json").read_text())
    for task in ("sign", "big"):
        assert metrics["val"][task]["accuracy"] > 0.8  # the carved val follows train's rule
        assert metrics["test"][task]["accuracy"] < 0.2  # the official val, flipped, is the test split
