"""The prediction pictures' colour maps on hand-made arrays, and the PNG they make."""

from __future__ import annotations

import io

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

from share_search.runs.pictures import (
    DEPTH_RAMP,
    GAP,
    NO_LABEL_COLOUR,
    SEGMENTATION_PALETTE,
    TILE_SIDE,
    colour_depth,
    colour_input,
    colour_normals,
    colour_probability,
    colour_segmentation,
    dense_pictures,
    depth_range,
    panel_png,
    shown_prediction,
    task_panel,
)
from share_search.data import Split
from share_search.train.tasks import Task

MAGENTA = list(NO_LABEL_COLOUR)


def test_segmentation_one_colour_per_class_and_no_label_magenta():
    classes = np.array([[0, 1, 2], [10, -1, np.nan]])
    rgb = colour_segmentation(classes)
    assert rgb.dtype == np.uint8 and rgb.shape == (2, 3, 3)
    assert rgb[0, 0].tolist() == [0, 0, 0]  # class 0 (multimnist_dense's background) is black
    assert rgb[0, 1].tolist() == SEGMENTATION_PALETTE[1].tolist() and rgb[1, 0].tolist() == SEGMENTATION_PALETTE[10].tolist()
    assert len({tuple(c) for c in rgb[0]}) == 3
    assert rgb[1, 1].tolist() == MAGENTA and rgb[1, 2].tolist() == MAGENTA
    assert MAGENTA not in SEGMENTATION_PALETTE.tolist()
    assert colour_segmentation(np.array([[len(SEGMENTATION_PALETTE) + 1]]))[0, 0].tolist() == SEGMENTATION_PALETTE[1].tolist()


def test_depth_near_bright_far_dark_invalid_magenta():
    depth = np.array([[1.0, 2.0, 3.0, 5.0, 0.0, np.nan]])
    near, far = depth_range(depth)
    assert (near, far) == (1.0, 5.0)  # 0 and NaN are not depths
    rgb = colour_depth(depth, near, far)
    assert rgb[0, 0].tolist() == DEPTH_RAMP[-1].tolist()  # nearest: the ramp's bright end (yellow)
    assert rgb[0, 3].tolist() == DEPTH_RAMP[0].tolist()  # farthest: its dark end
    brightness = rgb[0, :4].astype(int).sum(axis=1)
    assert (np.diff(brightness) < 0).all()  # farther is darker
    assert rgb[0, 4].tolist() == MAGENTA and rgb[0, 5].tolist() == MAGENTA
    # a prediction outside the truth's range is clipped, and its own validity is given
    clipped = colour_depth(np.array([[0.5, 9.0]]), near, far, valid=np.array([[True, True]]))
    assert clipped[0, 0].tolist() == DEPTH_RAMP[-1].tolist() and clipped[0, 1].tolist() == DEPTH_RAMP[0].tolist()


def test_normals_as_rgb_after_normalising_zero_is_no_label():
    normals = np.zeros((3, 1, 4))
    normals[:, 0, 0] = (0, 0, 1)  # facing the camera: (128, 128, 255)
    normals[:, 0, 1] = (2, 0, 0)  # not unit: normalised first
    normals[:, 0, 2] = (0, -1, 0)
    rgb = colour_normals(normals)
    assert rgb[0, 0].tolist() == [128, 128, 255]
    assert rgb[0, 1].tolist() == [255, 128, 128]
    assert rgb[0, 2].tolist() == [128, 0, 128]
    assert rgb[0, 3].tolist() == MAGENTA  # the zero vector: no label


def test_probability_as_grey_and_ignore_magenta():
    rgb = colour_probability(np.array([[0.0, 0.5, 1.0, np.nan, -1.0]]))
    assert rgb[0, 0].tolist() == [0, 0, 0] and rgb[0, 1].tolist() == [128, 128, 128] and rgb[0, 2].tolist() == [255, 255, 255]
    assert rgb[0, 3].tolist() == MAGENTA and rgb[0, 4].tolist() == MAGENTA


def test_input_stretched_grey_or_rgb():
    grey = colour_input(np.array([[[0.2, 0.6], [0.4, 0.2]]]))
    assert grey.shape == (2, 2, 3) and grey[0, 0].tolist() == [0, 0, 0] and grey[0, 1].tolist() == [255, 255, 255]
    assert (grey[..., 0] == grey[..., 2]).all()
    rgb = colour_input(np.stack([np.ones((2, 2)), np.zeros((2, 2)), np.zeros((2, 2))]))
    assert rgb[0, 0].tolist() == [255, 0, 0]
    assert colour_input(np.full((1, 3, 3), 7.0)).max() == 0  # a flat image is black, not a division by zero


def test_shown_prediction_per_type():
    logits = np.zeros((3, 1, 2))
    logits[2, 0, 0], logits[1, 0, 1] = 5, 5
    assert shown_prediction("segmentation", logits).tolist() == [[2, 1]]
    assert shown_prediction("binary_dense", np.array([[[0.0, 100.0]]])).tolist() == [[0.5, 1.0]]
    assert shown_prediction("depth", np.array([[[3.0]]])).tolist() == [[3.0]]


def test_panel_png_is_a_small_grid_of_enlarged_tiles():
    red, blue = np.zeros((36, 36, 3), np.uint8), np.zeros((36, 36, 3), np.uint8)
    red[..., 0], blue[..., 2] = 255, 255
    png = panel_png([(red, blue, red), (blue, red, blue)])
    image = np.asarray(Image.open(io.BytesIO(png)).convert("RGB"))
    side = 36 * (TILE_SIDE // 36)  # 72: enlarged by a whole factor
    assert image.shape == (2 * side + 3 * GAP, 3 * side + 4 * GAP, 3)
    assert image[GAP + 5, GAP + 5].tolist() == [255, 0, 0] and image[GAP + 5, 2 * GAP + side + 5].tolist() == [0, 0, 255]
    assert image[0, 0].tolist() == [255, 255, 255]  # the gap
    assert len(png) < 4000
    big = panel_png([(np.zeros((288, 384, 3), np.uint8),)])  # a NYUv2-sized sample is shrunk
    assert Image.open(io.BytesIO(big)).size == (TILE_SIDE + 2 * GAP, 54 + 2 * GAP)


def test_task_panel_puts_truth_beside_prediction():
    x = np.zeros((2, 1, 4, 4), np.float32)
    x[:, 0, 0, 0] = 1
    truth = np.zeros((2, 4, 4))
    truth[:, 2:, :] = 1
    logits = np.zeros((2, 2, 4, 4))
    logits[:, 1, 2:, :] = 3  # the prediction is right
    image = np.asarray(Image.open(io.BytesIO(task_panel("segmentation", x, truth, logits))).convert("RGB"))
    side = 4 * (TILE_SIDE // 4)
    truth_tile = image[GAP : GAP + side, 2 * GAP + side : 2 * GAP + 2 * side]
    guess_tile = image[GAP : GAP + side, 3 * GAP + 2 * side : 3 * GAP + 3 * side]
    np.testing.assert_array_equal(truth_tile, guess_tile)
    assert truth_tile[-1, 0].tolist() == SEGMENTATION_PALETTE[1].tolist()


class _Constant(nn.Module):
    """A 'network' predicting class 1 everywhere and depth 2, to check dense_pictures' wiring."""

    def __init__(self):
        super().__init__()
        self.w = nn.Parameter(torch.zeros(1))

    def forward(self, x):
        n, _, h, w = x.shape
        seg = torch.zeros(n, 3, h, w)
        seg[:, 1] = 1
        return {"seg": seg + self.w, "size": torch.zeros(n, 1), "depth": torch.full((n, 1, h, w), 2.0)}


def test_dense_pictures_one_png_per_dense_task_of_the_first_samples():
    split = Split(
        x=np.random.default_rng(0).random((5, 1, 6, 6), dtype=np.float32),
        y={"seg": np.ones((5, 6, 6), np.float32), "size": np.zeros(5, np.float32), "d": np.full((5, 1, 6, 6), 2.0, np.float32)},
    )
    tasks = [
        Task("seg", "seg", "multiclass", 3, "accuracy"),
        Task("size", "size", "binary", 1, "accuracy"),
        Task("depth", "d", "multiclass", 1, "accuracy"),
    ]
    assert dense_pictures(_Constant(), split, tasks) == {}  # no dense task: no picture
    tasks = [Task(t.name, t.label, kind, t.n_outputs, t.metric) for t, kind in zip(tasks, ("segmentation", "binary", "depth"))]
    model = _Constant().train()
    pictures = dense_pictures(model, split, tasks)
    assert set(pictures) == {"seg", "depth"} and model.training  # left as it was
    image = np.asarray(Image.open(io.BytesIO(pictures["seg"])).convert("RGB"))
    side = 6 * (TILE_SIDE // 6)
    assert image.shape[0] == 3 * side + 4 * GAP  # three samples
    assert image[GAP + 1, 3 * GAP + 2 * side + 1].tolist() == SEGMENTATION_PALETTE[1].tolist()


@pytest.mark.parametrize("kind", ["segmentation", "depth", "normals", "binary_dense"])
def test_every_dense_type_draws_a_few_kilobytes(kind):
    """Smooth maps, as labels and trained predictions are (noise would not compress)."""
    r, c = np.mgrid[0:36, 0:36] / 36.0
    x = np.stack([np.sin(6 * r) * np.cos(4 * c)] * 3)[:, None].astype(np.float32)
    maps = {
        "segmentation": (np.stack([(r * 4).astype(int) + (c > 0.5)] * 3), np.stack([np.stack([r, c, 1 - r])] * 3)),
        "depth": (np.stack([1 + 3 * r[None]] * 3), np.stack([1 + 3 * c[None]] * 3)),
        "normals": (np.stack([np.stack([r - 0.5, c - 0.5, np.ones_like(r)])] * 3), np.stack([np.stack([c - 0.5, r - 0.5, np.ones_like(r)])] * 3)),
        "binary_dense": (np.stack([(np.abs(r - 0.5) < 0.05).astype(float)] * 3), np.stack([(c - 0.5)[None] * 8] * 3)),
    }
    truth, output = maps[kind]
    png = task_panel(kind, x, truth, output)
    image = Image.open(io.BytesIO(png))
    side = 36 * (TILE_SIDE // 36)
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and image.size == (3 * side + 4 * GAP, 3 * side + 4 * GAP)
    assert len(png) < 12_000, len(png)


# --------------------------------------------------------------------------- read back from a run folder
def test_pictures_are_read_back_only_as_pngs_inside_the_artifact_folder(tmp_path):
    """A run folder may come from anyone: an artifact record naming a file outside the store,
    a file that is no PNG, a symlink or a huge file is passed over, never read into the report."""
    import json
    import os

    import optuna

    from share_search.runs.artifacts import MAX_PICTURE_BYTES, attach_trial_artifacts, trial_pictures

    png = panel_png([(np.zeros((4, 4, 3), np.uint8),)])
    store = tmp_path / "artifacts"
    study = optuna.create_study(study_name="s", storage=f"sqlite:///{tmp_path / 'study.db'}")
    trial = study.ask()
    arch = {"family": "tree", "stages": [[["a", "b"]]]}
    attach_trial_artifacts(study, trial, store, arch, None, pictures={"seg": png, "depth": png})
    secret = tmp_path / "secret.png"
    secret.write_bytes(png)  # a PNG, but outside the artifact folder
    forged = {
        "11111111-1111-4111-8111-111111111111": ("predictions-outside.png", "../secret.png"),
        "22222222-2222-4222-8222-222222222222": ("predictions-text.png", "22222222-2222-4222-8222-222222222222"),
        "33333333-3333-4333-8333-333333333333": ("predictions-link.png", "33333333-3333-4333-8333-333333333333"),
        "44444444-4444-4444-8444-444444444444": ("predictions-huge.png", "44444444-4444-4444-8444-444444444444"),
    }
    (store / "22222222-2222-4222-8222-222222222222").write_text("<script>alert(1)</script>")
    os.symlink(secret, store / "33333333-3333-4333-8333-333333333333")
    (store / "44444444-4444-4444-8444-444444444444").write_bytes(png + b"\0" * MAX_PICTURE_BYTES)
    for key, (name, artifact_id) in forged.items():
        meta = {"artifact_id": artifact_id, "filename": name, "mimetype": "image/png", "encoding": None}
        trial.storage.set_trial_system_attr(trial._trial_id, f"artifacts:{key}", json.dumps(meta))
    study.tell(trial, 1.0)
    found = trial_pictures(study.trials[0], store)
    assert found == {"seg": png, "depth": png}
