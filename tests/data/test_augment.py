"""Joint augmentation (issue 18, item 4): one draw moves the input and every per-pixel field of a
sample together; masks and depth are never blended, normals stay unit vectors and turn with a flip.

Fields encode their own pixel coordinates where a test must know where a pixel came from.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from share_search.data.augment import KINDS, build_augment, describe_augment
from share_search.errors import DataError
from share_search.spec.model import AugmentSpec

NYU_KINDS = {"image": "image", "label": "mask", "depth": "depth", "normal": "normals", "room": "vector"}
LABELS = (0, 3, 7, 12)  # a label set with gaps: a blended label would fall between them


def nyu_like(height: int, width: int, seed: int = 0) -> dict[str, torch.Tensor]:
    """A random sample in the folder dataset's convention: channels first, -1 ignored, depth 0 and normals 0 where invalid."""
    g = torch.Generator().manual_seed(seed)
    label = torch.tensor(LABELS)[torch.randint(len(LABELS), (height, width), generator=g)]
    label[torch.rand(height, width, generator=g) < 0.1] = -1
    depth = 0.5 + 9.5 * torch.rand(1, height, width, generator=g)
    depth[torch.rand(1, height, width, generator=g) < 0.3] = 0.0  # scattered holes, as a Kinect leaves them
    normal = torch.randn(3, height, width, generator=g)
    normal = normal / normal.norm(dim=0, keepdim=True)
    normal[:, depth[0] == 0] = 0.0
    return {
        "image": torch.rand(3, height, width, generator=g),
        "label": label,
        "depth": depth,
        "normal": normal,
        "room": torch.tensor([4.0, 1.0]),
    }


def coordinates(height: int, width: int) -> dict[str, torch.Tensor]:
    """Every per-pixel field holds its pixel's index row * width + col (depth shifted by 1: 0 is invalid)."""
    index = torch.arange(height * width).reshape(height, width)
    angle = index.float() / (height * width)  # a unit normal that names its pixel through its angle
    return {
        "image": index.float().expand(3, height, width).clone(),
        "label": index.clone(),
        "depth": (index + 1).float()[None],
        "normal": torch.stack([torch.cos(angle), torch.sin(angle), torch.zeros_like(angle)]),
    }


def augment(spec: AugmentSpec, kinds=NYU_KINDS, **options):
    transform = build_augment(spec, kinds, **options)
    assert transform is not None
    return transform


def draws(transform, sample, count: int = 5):
    """The transform's outputs for ``sample`` under torch seeds 0, 1, ... (one sample per seed)."""
    for seed in range(count):
        torch.manual_seed(seed)
        yield transform(sample)


def scaled_nyu(scale, depth_follows_scale: bool = False):
    """A NYUv2-like sample and five draws of it scaled by ``scale``, cropped back to its size
    (depth values kept unless asked: these tests follow where a pixel came from)."""
    sample = nyu_like(24, 30)
    return sample, list(draws(augment(AugmentSpec(scale=scale, crop=(24, 30), depth_follows_scale=depth_follows_scale)), sample))


# --------------------------------------------------------------------------- flip (the done-when)
def test_a_flipped_sample_matches_the_flipped_original_pixel_by_pixel():
    sample = nyu_like(12, 17)
    original = {k: v.clone() for k, v in sample.items()}
    out = augment(AugmentSpec(hflip=True), hflip_probability=1.0)(sample)
    expected_normal = np.flip(original["normal"].numpy(), axis=-1).copy()
    expected_normal[0] *= -1  # channel 0 is x, along the width: a mirrored scene turns it around
    np.testing.assert_array_equal(out["image"].numpy(), np.flip(original["image"].numpy(), axis=-1))
    np.testing.assert_array_equal(out["label"].numpy(), np.flip(original["label"].numpy(), axis=-1))
    np.testing.assert_array_equal(out["depth"].numpy(), np.flip(original["depth"].numpy(), axis=-1))
    np.testing.assert_array_equal(out["normal"].numpy(), expected_normal)
    assert out["label"].dtype == torch.int64 and out["depth"].dtype == torch.float32
    assert out["room"] is sample["room"]  # a per-sample vector is untouched
    for name, value in sample.items():  # the caller's tensors are not changed in place
        assert torch.equal(value, original[name]), name


def test_hflip_off_or_not_drawn_leaves_the_sample_as_it_was():
    sample = nyu_like(6, 9)
    out = augment(AugmentSpec(hflip=True), hflip_probability=0.0)(sample)
    for name in sample:
        assert torch.equal(out[name], sample[name]), name


def test_hflip_flips_about_half_of_the_samples():
    transform = augment(AugmentSpec(hflip=True), kinds={"image": "image"})
    image = torch.arange(4.0).expand(1, 2, 4)
    torch.manual_seed(0)
    flipped = sum(bool(transform({"image": image})["image"][0, 0, 0] == 3) for _ in range(200))
    assert 60 < flipped < 140, flipped


# --------------------------------------------------------------------------- crop
def test_every_field_is_cropped_at_the_same_window():
    height, width, crop = 12, 16, (5, 7)
    sample = coordinates(height, width)
    transform = augment(AugmentSpec(crop=crop))
    windows = set()
    for out in draws(transform, sample, 20):
        top, left = divmod(int(out["image"][0, 0, 0]), width)
        window = (..., slice(top, top + crop[0]), slice(left, left + crop[1]))
        windows.add((top, left))
        for name in sample:
            assert out[name].shape[-2:] == crop, name
            assert torch.equal(out[name], sample[name][window]), (name, top, left)
    assert len(windows) > 5, windows  # the window moves from sample to sample


@pytest.mark.parametrize("ignore_index", [-1, 255])
def test_a_crop_larger_than_the_sample_pads_masks_with_the_ignore_value_and_depth_normals_with_zero(ignore_index):
    height, width, crop = 6, 8, (10, 13)
    sample = coordinates(height, width)
    out = augment(AugmentSpec(crop=crop), ignore_index=ignore_index)(sample)
    label = out["label"]
    inside = label != ignore_index
    assert int(inside.sum()) == height * width  # the whole sample is there, once
    rows, cols = np.nonzero(inside.numpy())
    top, left = rows.min(), cols.min()
    window = (..., slice(top, top + height), slice(left, left + width))
    for name in sample:
        assert out[name].shape[-2:] == crop, name
        assert torch.equal(out[name][window], sample[name]), name
    outside = ~inside
    assert torch.all(out["depth"][0][outside] == 0)  # 0: invalid depth
    assert torch.all(out["normal"][:, outside] == 0)  # 0: invalid normal
    assert torch.all(out["image"][:, outside] == 0)


def test_a_scaled_down_sample_is_padded_back_to_the_crop():
    sample = coordinates(20, 24)  # no ignored label: every -1 in the output is padding
    out = augment(AugmentSpec(scale=(0.5, 0.5), crop=(20, 24)))(sample)
    padding = out["label"] == -1
    assert out["label"].shape == (20, 24)
    assert int((~padding).sum()) == 10 * 12  # the half-size sample, whole
    assert torch.all(out["depth"][0][padding] == 0) and torch.all(out["depth"][0][~padding] > 0)
    assert torch.all(out["normal"][:, padding] == 0) and torch.all(out["image"][:, padding] == 0)


# --------------------------------------------------------------------------- scale
SCALES = [(0.5, 0.5), (0.75, 1.25), (1.6, 1.6)]


@pytest.mark.parametrize("scale", SCALES)
def test_scaled_masks_keep_their_label_set(scale):
    for out in scaled_nyu(scale)[1]:
        assert set(out["label"].unique().tolist()) <= {-1, *LABELS}  # nearest: no label between two labels


@pytest.mark.parametrize("scale", SCALES)
def test_scaled_depth_is_never_blended_with_invalid_pixels(scale):
    """Nearest: every depth is one that was measured, and 0 (invalid) only where a hole or the padding was."""
    sample, outs = scaled_nyu(scale)
    measured = set(sample["depth"].unique().tolist())
    for out in outs:
        assert set(out["depth"].unique().tolist()) <= measured | {0.0}


@pytest.mark.parametrize("factor", [0.5, 1.6, 2.0])
def test_scaled_depth_is_divided_by_the_factor_and_invalid_stays_zero(factor):
    """MTAN's and LibMTL's convention (on by default): enlarged s times, seen s times closer."""
    sample, kept = scaled_nyu((factor, factor))
    _, divided = scaled_nyu((factor, factor), depth_follows_scale=True)
    for a, b in zip(kept, divided):
        torch.testing.assert_close(b["depth"], a["depth"] / factor)
        assert torch.equal(b["depth"] == 0, a["depth"] == 0)
        for name in ("image", "label", "normal"):
            assert torch.equal(a[name], b[name]), name
    assert AugmentSpec(scale=(1.0, 2.0)).depth_follows_scale


@pytest.mark.parametrize("scale", SCALES)
def test_mask_depth_and_normal_validity_come_from_the_same_source_pixel(scale):
    """Each output pixel of the label and the depth names one source pixel, the same for both,
    and the normal there is valid exactly where that source pixel's normal was."""
    height, width = 24, 30
    sample = coordinates(height, width)
    valid_normal = torch.rand(height, width, generator=torch.Generator().manual_seed(1)) > 0.3
    sample["normal"] = sample["normal"] * valid_normal
    kinds = {"image": "image", "label": "mask", "depth": "depth", "normal": "normals"}
    for out in draws(augment(AugmentSpec(scale=scale, crop=(height, width), depth_follows_scale=False), kinds=kinds), sample):
        source = out["label"]
        inside = source >= 0
        assert torch.equal(out["depth"][0][inside], (source[inside] + 1).float())
        assert torch.all(out["depth"][0][~inside] == 0)
        normal_valid = out["normal"].abs().sum(0) > 0
        assert torch.equal(normal_valid[inside], valid_normal.flatten()[source[inside]])
        assert not normal_valid[~inside].any()


@pytest.mark.parametrize("scale", [(0.6, 1.6)])
def test_the_scaled_image_stays_aligned_with_its_mask_within_half_a_source_pixel(scale):
    """Bilinear image and nearest mask sample the same point: nearest-exact, not torch's legacy nearest
    (which shifts a label map by up to a whole source pixel)."""
    height, width = 24, 32
    rows, cols = torch.meshgrid(torch.arange(height), torch.arange(width), indexing="ij")
    sample = {"image": torch.stack([rows.float(), cols.float()]), "label": rows * width + cols}
    for out in draws(augment(AugmentSpec(scale=scale, crop=(20, 20)), kinds={"image": "image", "label": "mask"}), sample, 20):
        inside = out["label"] >= 0
        source_row, source_col = out["label"][inside] // width, out["label"][inside] % width
        assert (out["image"][0][inside] - source_row).abs().max() <= 0.5 + 1e-4
        assert (out["image"][1][inside] - source_col).abs().max() <= 0.5 + 1e-4


@pytest.mark.parametrize("scale", SCALES)
def test_scaled_normals_are_unit_length_where_valid_and_zero_elsewhere(scale):
    for out in scaled_nyu(scale)[1]:
        length = out["normal"].norm(dim=0)
        valid = length > 0
        assert valid.any()
        torch.testing.assert_close(length[valid], torch.ones(int(valid.sum())), atol=1e-5, rtol=0)


def test_scale_without_crop_keeps_the_sample_s_size_so_batches_stack():
    sample = nyu_like(18, 22)
    out = augment(AugmentSpec(scale=(0.75, 1.25)))(sample)
    for name in ("image", "label", "depth", "normal"):
        assert out[name].shape == sample[name].shape, name


def test_vectors_are_untouched_by_every_option():
    sample = nyu_like(16, 20)
    out = augment(AugmentSpec(hflip=True, crop=(8, 8), scale=(0.75, 1.25)), hflip_probability=1.0)(sample)
    assert out["room"] is sample["room"]


# --------------------------------------------------------------------------- random numbers
def test_the_same_torch_seed_gives_the_same_sample_and_another_seed_a_different_one():
    sample = nyu_like(32, 40)
    transform = augment(AugmentSpec(hflip=True, crop=(24, 28), scale=(0.75, 1.25)))

    def draw(seed):
        torch.manual_seed(seed)
        return transform(sample)

    first, again, other = draw(7), draw(7), draw(8)
    for name in sample:
        assert torch.equal(first[name], again[name]), name
    assert any(not torch.equal(first[name], other[name]) for name in ("image", "label", "depth", "normal"))


class _Samples(torch.utils.data.Dataset):
    def __init__(self, transform):
        self.transform = transform
        self.sample = nyu_like(16, 20)

    def __len__(self):
        return 6

    def __getitem__(self, index):
        return self.transform(self.sample)


def test_dataloader_workers_seeded_from_one_seed_repeat_the_same_augmentations():
    """The trainer seeds the DataLoader; its workers' global torch generators then repeat the draws."""
    transform = augment(AugmentSpec(hflip=True, crop=(12, 12), scale=(0.75, 1.25)))

    def epoch(seed):
        loader = torch.utils.data.DataLoader(_Samples(transform), batch_size=3, num_workers=1, generator=torch.Generator().manual_seed(seed))
        return [batch["label"] for batch in loader]

    first, again, other = epoch(3), epoch(3), epoch(4)
    assert all(torch.equal(a, b) for a, b in zip(first, again))
    assert not all(torch.equal(a, b) for a, b in zip(first, other))


# --------------------------------------------------------------------------- the real size, and what is refused
def test_a_sample_of_mtan_s_nyuv2_size_goes_through_every_option():
    sample = nyu_like(288, 384)
    for out in draws(augment(AugmentSpec(hflip=True, crop=(256, 320), scale=(0.75, 1.25))), sample, 3):
        assert out["image"].shape == (3, 256, 320) and out["image"].dtype == torch.float32
        assert out["label"].shape == (256, 320) and out["label"].dtype == torch.int64
        assert out["depth"].shape == (1, 256, 320) and out["normal"].shape == (3, 256, 320)


@pytest.mark.parametrize("spec", [None, AugmentSpec(), AugmentSpec(hflip=False)])
def test_no_augmentation_builds_no_transform(spec):
    assert build_augment(spec, NYU_KINDS) is None
    assert describe_augment(spec) == "none"


def test_describe_states_each_step_and_the_training_split():
    text = describe_augment(AugmentSpec(hflip=True, crop=(256, 320), scale=(0.75, 1.25)))
    assert text.startswith("training split only: ")
    for words in ("scale by a factor in [0.75, 1.25]", "masks nearest", "depth nearest and divided by the factor", "re-normalised", "random crop 256x320",
                  "masks with the ignore value, depth and normals with 0", "horizontal flip with probability 0.5", "normals' x negated"):
        assert words in text, text
    assert "back to the sample's size" in describe_augment(AugmentSpec(scale=(0.5, 1.0)))
    assert "its values kept" in describe_augment(AugmentSpec(scale=(0.5, 1.0), depth_follows_scale=False))


def test_an_unknown_kind_is_refused_naming_the_field():
    with pytest.raises(DataError, match=r"a field's kind is one of image, mask, depth, normals, vector, got 'seg': 'segmentation'"):
        build_augment(AugmentSpec(hflip=True), {"image": "image", "seg": "segmentation"})
    assert KINDS == ("image", "mask", "depth", "normals", "vector")


def test_augmenting_only_vectors_is_refused():
    with pytest.raises(DataError, match=r"every field is a vector: x, y"):
        build_augment(AugmentSpec(hflip=True), {"x": "vector", "y": "vector"})


def test_a_field_without_a_kind_is_refused_naming_it():
    transform = augment(AugmentSpec(hflip=True), kinds={"image": "image"})
    with pytest.raises(DataError, match=r"field 'extra' of a sample has no kind \(fields with kinds: image\)"):
        transform({"image": torch.zeros(3, 4, 4), "extra": torch.zeros(4, 4)})


@pytest.mark.parametrize(
    "field,value,words",
    [
        ("label", torch.zeros(5, 6, dtype=torch.int64), "the per-pixel fields of a sample must share one height and width, got image (4, 6), label (5, 6)"),
        ("normal", torch.zeros(2, 4, 6), "field 'normal' (normals) must be shaped (3, H, W), got (2, 4, 6)"),
        ("depth", torch.zeros(2, 4, 6), "field 'depth' (depth) must be shaped (1, H, W), got (2, 4, 6)"),
        ("image", torch.zeros(4, 6), "field 'image' (image) must be shaped (C, H, W), got (4, 6)"),
    ],
)
def test_fields_of_the_wrong_shape_are_refused_naming_them(field, value, words):
    sample = {"image": torch.zeros(3, 4, 6), "label": torch.zeros(4, 6, dtype=torch.int64), "depth": torch.zeros(1, 4, 6), "normal": torch.zeros(3, 4, 6)}
    sample[field] = value
    with pytest.raises(DataError) as caught:
        augment(AugmentSpec(hflip=True), kinds={k: NYU_KINDS[k] for k in sample})(sample)
    assert words in str(caught.value)
