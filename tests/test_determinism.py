"""Same spec, same seed, on the CPU: two runs give the same leaderboard, values and order.

Trials run two at a time on reused Ray workers, so each trial must reset every seed it
depends on (``train.loop.fit`` does), and the trials must be sampled in the same order (the
random sampler asks in trial order). Only wall-clock times may differ.
"""

import json

import pandas as pd

from share_search.cli import main
from tests.runs import small_spec, write_spec


def _run(tmp_path, name):
    # no reference trials (one Tuner phase instead of two keeps the test short); ranked by Pareto front
    spec = small_spec(search={"trials": 6, "concurrency": 2, "export_top": 1, "baselines": False, "objective": "per_task"})
    path = write_spec(tmp_path / f"{name}.yaml", spec)
    assert main(["run", str(path), "--out", str(tmp_path / name), "--quiet"]) == 0
    board = pd.read_csv(tmp_path / name / "leaderboard.csv")
    recipe = json.loads((tmp_path / name / "export" / "rank-1" / "recipe.json").read_text())
    return board, recipe


def test_same_spec_and_seed_give_the_same_leaderboard(tmp_path, ray_session):
    first, first_recipe = _run(tmp_path, "first")
    second, second_recipe = _run(tmp_path, "second")
    assert len(first) == 6 and set(first["state"]) == {"COMPLETE"}
    assert first["family"].nunique() == 2  # both families were tried
    timeless = [c for c in first.columns if c != "time_s"]
    pd.testing.assert_frame_equal(first[timeless], second[timeless], check_exact=True)
    assert first_recipe["weights_sha256"] == second_recipe["weights_sha256"]  # the same weights, bit for bit
