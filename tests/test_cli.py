"""The command line: init -> validate, one-line errors with exit code 2, leaderboard formats."""

import json
import subprocess
import sys

import pandas as pd
import pytest

from share_search.cli import main


def test_init_then_validate(tmp_path, capsys):
    path = tmp_path / "spaces" / "mtl.yaml"
    assert main(["init", str(path)]) == 0
    assert "name: mtl" in path.read_text()
    assert main(["validate", str(path)]) == 0
    out = capsys.readouterr().out
    for words in ("spec is valid", "digit", "multiclass", "higher is better", "train 1257, val 270, test 270", "tree", "cross_stitch", "progressive"):
        assert words in out


def test_init_refuses_to_overwrite(tmp_path, capsys):
    path = tmp_path / "x.yaml"
    path.write_text("keep me")
    assert main(["init", str(path)]) == 2
    assert "already exists" in capsys.readouterr().err
    assert path.read_text() == "keep me"


def test_validate_shows_every_family_space_size_for_the_demo(capsys):
    assert main(["validate", "search_spaces/mtl.yaml"]) == 0
    out = capsys.readouterr().out
    assert "multimnist" in out and "(1, 28, 28)" in out
    for family, size in (("tree", "60"), ("cross_stitch", "7"), ("progressive", "6")):
        assert any(line.strip("│ ").startswith(family) and f" {size} " in line for line in out.splitlines()), family


def test_broken_spec_exits_2_with_key_path_and_no_traceback(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("name: x\ndata: {source: digits}\ntasks: {a: {metric: acuracy}, b: {}}\nfamilies: [tree]\n")
    proc = subprocess.run([sys.executable, "-m", "share_search.cli", "validate", str(path)], capture_output=True, text=True)
    assert proc.returncode == 2
    assert proc.stderr.strip() == "error: tasks.a.metric: unknown metric 'acuracy' (known: accuracy, balanced_accuracy, f1, auc, mae, rmse, r2, miou, pixel_accuracy, abs_err, rel_err, mean_angle, median_angle, within_11_25, within_22_5, within_30, iou, f_score)"
    assert "Traceback" not in proc.stderr
    debug = subprocess.run([sys.executable, "-m", "share_search.cli", "--debug", "validate", str(path)], capture_output=True, text=True)
    assert debug.returncode != 0 and "Traceback" in debug.stderr


@pytest.mark.parametrize("fmt", ["csv", "json", "parquet"])
def test_leaderboard_formats(small_run, tmp_path, fmt):
    out = tmp_path / f"board.{fmt}"
    assert main(["leaderboard", str(small_run.run_dir), "--format", fmt, "--output", str(out)]) == 0
    board = {"csv": pd.read_csv, "json": lambda p: pd.DataFrame(json.loads(p.read_text())), "parquet": pd.read_parquet}[fmt](out)
    assert list(board["rank"][:7]) == list(range(1, 8))
    assert {"val.digit", "val.odd", "val.loop", "delta_m", "params", "macs", "time_s", "state"} <= set(board.columns)


def test_leaderboard_rank_keys_and_budget(small_run, capsys):
    assert main(["leaderboard", str(small_run.run_dir), "--format", "csv", "--rank-by", "pareto"]) == 0
    pareto = pd.read_csv(__import__("io").StringIO(capsys.readouterr().out))
    assert pareto["pareto_front"].dropna().is_monotonic_increasing
    limit = int(small_run.board["params"].median())
    assert main(["leaderboard", str(small_run.run_dir), "--format", "csv", "--budget", f"params<={limit}"]) == 0
    within = pd.read_csv(__import__("io").StringIO(capsys.readouterr().out))
    assert (within.dropna(subset=["rank"])["params"] <= limit).all()
    assert main(["leaderboard", str(small_run.run_dir), "--rank-by", "nope"]) == 2
    assert "nope" in capsys.readouterr().err


def test_export_more_than_finished_is_refused(small_run, capsys):
    assert main(["export", str(small_run.run_dir), "--top", "99"]) == 2
    assert "--top 99: only 7 trial(s)" in capsys.readouterr().err
