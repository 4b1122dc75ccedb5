"""The dense demo: ``search_spaces/dense.yaml`` as shipped, and a shortened run of it
(``dense_run`` in conftest.py) with every family on the leaderboard with per-pixel metrics,
each finished trial's prediction pictures in the study, and a model card listing them.

Runs Ray: run it under the shared lock (``flock /tmp/share-search-ray.lock python -m pytest ...``).
"""

from __future__ import annotations

import io

import numpy as np
import optuna
from PIL import Image

from share_search.runs.artifacts import trial_pictures
from share_search.runs.dashboard import artifact_dir
from share_search.runs.report import report_data
from share_search.spec.model import load_spec
from share_search.train.problem import load_problem

from .runs import REPO

DENSE_METRICS = {
    "segmentation": ("miou", "pixel_accuracy"),
    "depth": ("abs_err", "rel_err"),
    "edges": ("f_score", "iou"),
}
TYPES = {"segmentation": "segmentation", "depth": "depth", "edges": "binary_dense"}


def test_the_shipped_spec_searches_every_family_on_a_map_keeping_encoder():
    spec = load_spec(REPO / "search_spaces" / "dense.yaml")
    assert spec.data.source == "multimnist_dense"
    assert set(spec.families) == {"tree", "cross_stitch", "progressive"}
    problem = load_problem(spec)
    assert {t.name: t.type for t in problem.tasks} == TYPES
    assert {t.name: t.metrics for t in problem.tasks} == DENSE_METRICS
    shapes = problem.backbone.stage_shapes
    assert len(shapes) >= 3 and len(shapes[-1]) == 3  # (C, H, W): a feature map for the decoders, not a vector
    assert problem.backbone.input_shape == (1, 36, 36)


def test_every_family_is_on_the_leaderboard_with_per_pixel_metrics(dense_run):
    board = dense_run.board
    complete = board[board["state"] == "COMPLETE"]
    assert set(complete["family"]) >= {"tree", "cross_stitch", "progressive"}, board[["trial", "family", "state", "fail_reason"]]
    assert dense_run.counts.get("failed", 0) == 0
    for task, (primary, extra) in DENSE_METRICS.items():
        assert complete[f"val.{task}"].notna().all()
        extra_column = next(c for c in board.columns if task in c and extra in c)
        assert complete[extra_column].notna().all()
    assert complete["val.segmentation"].between(0, 1).all() and (complete["val.depth"] >= 0).all()


def test_every_finished_trial_stores_a_small_picture_per_dense_task(dense_run):
    study = optuna.load_study(study_name="dense", storage=f"sqlite:///{dense_run.run_dir / 'study.db'}")
    finished = [t for t in study.get_trials() if t.state == optuna.trial.TrialState.COMPLETE]
    assert len(finished) == len(dense_run.board[dense_run.board["state"] == "COMPLETE"])
    for trial in finished:
        pictures = trial_pictures(trial, artifact_dir(dense_run.run_dir))
        assert set(pictures) == set(TYPES), trial.number
        for png in pictures.values():
            image = Image.open(io.BytesIO(png))
            assert image.format == "PNG" and len(png) < 20_000
            assert image.size[0] > 3 * 36 and image.size[1] > 3 * 36  # three samples of three enlarged tiles
            assert np.asarray(image.convert("RGB")).std() > 10  # something was drawn


def test_the_report_data_holds_the_top_trials_pictures(dense_run):
    from share_search.runs.run_folder import open_run

    run = open_run(dense_run.run_dir)
    data = report_data(run.study, top=3, artifact_dir=artifact_dir(dense_run.run_dir))
    assert [p.rank for p in data.pictures] == [1, 2, 3]
    assert all(list(p.pictures) == list(TYPES) for p in data.pictures)  # in the study's task order
    assert {t.name: t.type for t in data.tasks} == TYPES


def test_the_model_card_lists_the_per_pixel_metrics(dense_run):
    card = (dense_run.exported[0] / "MODEL_CARD.md").read_text()
    for task, metrics in DENSE_METRICS.items():
        for metric in metrics:
            assert f"| {task} | {metric} |" in card
    assert "| segmentation | miou | higher is better |" in card and "| depth | abs_err | lower is better |" in card
    assert "Per-pixel tasks: segmentation (segmentation), depth (depth), edges (binary_dense)" in card
