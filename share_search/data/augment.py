"""Joint augmentation of one training sample: every per-pixel field moves with the input.

``build_augment(spec.data.augment, kinds)`` turns ``data.augment: {hflip, crop, scale}`` into
a callable on one sample (a dict of channels-first tensors). It is built on
``torchvision.transforms.v2``: the fields go through each transform together, as tv_tensors,
so one random draw (scale factor, crop window, flip) applies to all of them. Random numbers
come from torch's global generator, which the DataLoader seeds in each worker from the
trial's seed; the dataset applies the callable to the training split only.

How each kind of field is treated (``KINDS``):

- ``image`` (C, H, W): bilinear (antialiased when shrunk); crop padding 0.
- ``mask`` (H, W) integer labels: nearest (pixel centres kept aligned with the image), so a
  label is never blended into another; crop padding is the ignore value.
- ``depth`` (1, H, W), 0 where invalid: nearest as well. Bilinear depth would mix a valid
  value with a 0 (invalid) neighbour, and across an object's edge would invent "flying
  pixels" at depths belonging to neither surface; nearest keeps every value one that was
  measured, and 0 stays 0. Crop padding is 0 (invalid). Scaling by a factor s divides the
  depth values by s (``depth_follows_scale``, on by default): an image enlarged s times looks
  as if the camera were s times closer, and a depth map that kept its values would pair the
  closer view with the far distances. MTAN's and LibMTL's NYUv2 augmentation does the same
  (Liu, Johns, Davison 2019, "End-to-End Multi-Task Learning with Attention", CVPR), so
  results stay comparable with theirs. 0 (invalid) stays 0.
- ``normals`` (3, H, W) unit vectors, zero where invalid: bilinear (normals vary smoothly over a
  surface, nearest would make them blocky when enlarged), then re-normalised to unit length;
  which pixels are valid is resampled by nearest, as depth's are. Channel 0 is the component
  along the image's width (x, towards increasing column), so a horizontal flip negates it.
  Crop padding is 0 (invalid).
- ``vector`` (k,) per-sample values: untouched.
"""

from __future__ import annotations

from typing import Callable, Mapping

import torch
from torchvision import tv_tensors
from torchvision.transforms import v2
from torchvision.transforms.v2 import InterpolationMode
from torchvision.transforms.v2 import functional as F

from ..errors import DataError
from ..spec.model import AugmentSpec

KINDS = ("image", "mask", "depth", "normals", "vector")
PER_PIXEL_KINDS = ("image", "mask", "depth", "normals")
DEFAULT_IGNORE_INDEX = -1  # preprocessed NYUv2 (MTAN, LibMTL); 255 is common elsewhere (Cityscapes, Pascal)
HFLIP_PROBABILITY = 0.5
MIN_NORMAL_LENGTH = 1e-6  # a resampled normal shorter than this has no direction left: it becomes invalid (0)


class Depth(tv_tensors.Mask):
    """A depth map (1, H, W), 0 where invalid: resampled, cropped and flipped as a mask is (nearest)."""


class Normals(tv_tensors.Image):
    """Surface normals (3, H, W), zero where invalid; channel 0 is x, along the image's width.

    Only the transforms this module uses are made normal-aware (resize, horizontal flip);
    crop and pad are an image's.
    """


@F.register_kernel(F.horizontal_flip, Normals)
def _flip_normals(normals: Normals) -> Normals:
    """Mirror the normals left-right: the scene is mirrored, so x (channel 0) changes sign."""
    flipped = F.horizontal_flip_image(normals.as_subclass(torch.Tensor))
    flipped[..., 0, :, :] *= -1  # horizontal_flip_image returns a new tensor: this does not touch the input
    return tv_tensors.wrap(flipped, like=normals)


@F.register_kernel(F.resize, Normals)
def _resize_normals(normals: Normals, size: list[int], interpolation=InterpolationMode.BILINEAR, max_size=None, antialias=True) -> Normals:
    """Bilinear vectors re-normalised to unit length, valid where the nearest source pixel was valid."""
    plain = normals.as_subclass(torch.Tensor)
    vectors = F.resize_image(plain, size, InterpolationMode.BILINEAR, max_size=max_size, antialias=antialias)
    valid = F.resize_mask((plain != 0).any(dim=-3, keepdim=True).to(torch.uint8), size, InterpolationMode.NEAREST_EXACT, max_size=max_size)
    length = vectors.norm(dim=-3, keepdim=True)
    keep = valid.bool() & (length > MIN_NORMAL_LENGTH)
    unit = torch.where(keep, vectors / length.clamp_min(MIN_NORMAL_LENGTH), torch.zeros((), dtype=vectors.dtype))
    return tv_tensors.wrap(unit, like=normals)


class RandomScale(v2.Transform):
    """Resize every field by one factor drawn uniformly from [low, high] per sample.

    Masks and depth (``tv_tensors.Mask``) take nearest-exact, which keeps pixel centres where
    bilinear puts them (plain nearest shifts a label map by up to half a pixel against the image).
    With ``depth_follows_scale`` depth values are divided by the factor (module docstring).
    """

    def __init__(self, low: float, high: float, depth_follows_scale: bool = True):
        super().__init__()
        self.low, self.high, self.depth_follows_scale = low, high, depth_follows_scale

    def make_params(self, flat_inputs: list) -> dict:
        height, width = F.get_size(next(x for x in flat_inputs if isinstance(x, (tv_tensors.Image, tv_tensors.Mask))))
        factor = self.low + (self.high - self.low) * float(torch.rand(()))
        return {"size": [max(1, round(height * factor)), max(1, round(width * factor))], "factor": factor}

    def transform(self, inpt, params: dict):
        mode = InterpolationMode.NEAREST_EXACT if isinstance(inpt, tv_tensors.Mask) else InterpolationMode.BILINEAR
        resized = self._call_kernel(F.resize, inpt, size=params["size"], interpolation=mode, antialias=True)
        if isinstance(inpt, Depth) and self.depth_follows_scale:
            return tv_tensors.wrap(resized.as_subclass(torch.Tensor) / params["factor"], like=resized)  # 0 (invalid) stays 0
        return resized


WRAPPERS = {"image": tv_tensors.Image, "mask": tv_tensors.Mask, "depth": Depth, "normals": Normals}


class JointAugment:
    """One sample's augmentation: ``transform(sample) -> sample``, the same draw for every field.

    ``sample`` maps field names to channels-first tensors; ``kinds`` maps each field to one of
    ``KINDS``. Output tensors are plain tensors of the input's dtype; vector fields are returned
    as they came.
    """

    def __init__(self, spec: AugmentSpec, kinds: Mapping[str, str], ignore_index: int = DEFAULT_IGNORE_INDEX, hflip_probability: float = HFLIP_PROBABILITY):
        self.spec = spec
        self.kinds = dict(kinds)
        self.ignore_index = ignore_index
        self.scale = RandomScale(*spec.scale, depth_follows_scale=spec.depth_follows_scale) if spec.scale is not None else None
        self.flip = v2.RandomHorizontalFlip(p=hflip_probability) if spec.hflip else None
        self._crops: dict[tuple[int, int], v2.RandomCrop] = {}

    def __call__(self, sample: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        per_pixel = {name: value for name, value in sample.items() if self._kind(name) != "vector"}
        if not per_pixel:
            return dict(sample)
        size = self._common_size(per_pixel)
        fields = {name: WRAPPERS[self.kinds[name]](value) for name, value in per_pixel.items()}
        if self.scale is not None:
            fields = self.scale(fields)
        crop = self.spec.crop or (size if self.scale is not None else None)  # scaled alone: back to the sample's own size, so batches stack
        if crop is not None:
            fields = self._crop(tuple(crop))(fields)
        if self.flip is not None:
            fields = self.flip(fields)
        return {name: fields[name].as_subclass(torch.Tensor) if name in fields else value for name, value in sample.items()}

    def _kind(self, name: str) -> str:
        if name not in self.kinds:
            raise DataError(f"data.augment: field {name!r} of a sample has no kind (fields with kinds: {', '.join(self.kinds) or 'none'})")
        return self.kinds[name]

    def _crop(self, size: tuple[int, int]) -> v2.RandomCrop:
        """A random crop of ``size``, padding where the sample is smaller: masks with the ignore value, depth and normals with 0 (invalid)."""
        if size not in self._crops:
            fill = {tv_tensors.Image: 0, Normals: 0, tv_tensors.Mask: self.ignore_index, Depth: 0}
            self._crops[size] = v2.RandomCrop(size, pad_if_needed=True, fill=fill)
        return self._crops[size]

    def _common_size(self, fields: Mapping[str, torch.Tensor]) -> tuple[int, int]:
        """The (H, W) every per-pixel field shares; a DataError naming the field whose shape does not fit."""
        sizes = {}
        for name, value in fields.items():
            kind = self.kinds[name]
            expected = {"image": (3,), "mask": (2, 3), "depth": (2, 3), "normals": (3,)}[kind]
            channels_ok = kind not in ("mask", "depth") or value.ndim == 2 or value.shape[0] == 1
            if value.ndim not in expected or not channels_ok or (kind == "normals" and value.shape[0] != 3):
                shape = {"image": "(C, H, W)", "mask": "(H, W)", "depth": "(1, H, W)", "normals": "(3, H, W)"}[kind]
                raise DataError(f"data.augment: field {name!r} ({kind}) must be shaped {shape}, got {tuple(value.shape)}")
            sizes[name] = tuple(value.shape[-2:])
        if len(set(sizes.values())) > 1:
            raise DataError("data.augment: the per-pixel fields of a sample must share one height and width, got " + ", ".join(f"{n} {s}" for n, s in sizes.items()))
        return next(iter(sizes.values()))

    def __repr__(self) -> str:
        return f"JointAugment({describe_augment(self.spec)}; kinds {self.kinds}, ignore_index {self.ignore_index})"


def build_augment(
    spec: AugmentSpec | None,
    kinds: Mapping[str, str],
    ignore_index: int = DEFAULT_IGNORE_INDEX,
    *,
    hflip_probability: float = HFLIP_PROBABILITY,
) -> Callable[[Mapping[str, torch.Tensor]], dict[str, torch.Tensor]] | None:
    """The training split's per-sample transform for ``data.augment``, or None when it changes nothing.

    ``kinds``: field name -> one of ``KINDS`` (the input included). ``ignore_index``: the mask
    value that pads a crop and is ignored by losses. ``hflip_probability``: the chance of a flip
    when ``hflip`` is on (tests force 1).
    """
    if spec is None or not spec.active:
        return None
    unknown = {name: kind for name, kind in kinds.items() if kind not in KINDS}
    if unknown:
        raise DataError(f"data.augment: a field's kind is one of {', '.join(KINDS)}, got " + ", ".join(f"{n!r}: {k!r}" for n, k in unknown.items()))
    if not any(kind in PER_PIXEL_KINDS for kind in kinds.values()):
        raise DataError(f"data.augment: augmentation moves per-pixel fields ({', '.join(PER_PIXEL_KINDS)}), but every field is a vector: {', '.join(kinds) or 'none'}")
    return JointAugment(spec, kinds, ignore_index, hflip_probability)


def describe_augment(spec: AugmentSpec | None) -> str:
    """One line for ``validate``: what ``data.augment`` does to a training sample."""
    if spec is None or not spec.active:
        return "none"
    steps = []
    if spec.scale is not None:
        depth = "depth nearest and divided by the factor" if spec.depth_follows_scale else "depth nearest, its values kept"
        steps.append(f"scale by a factor in [{spec.scale[0]:g}, {spec.scale[1]:g}] (masks nearest, {depth}, normals bilinear and re-normalised)")
    if spec.crop is not None:
        steps.append(f"random crop {spec.crop[0]}x{spec.crop[1]} (padded where smaller: masks with the ignore value, depth and normals with 0)")
    elif spec.scale is not None:
        steps.append("random crop back to the sample's size (padded where smaller: masks with the ignore value, depth and normals with 0)")
    if spec.hflip:
        steps.append(f"horizontal flip with probability {HFLIP_PROBABILITY:g} (normals' x negated)")
    return "training split only: " + ", then ".join(steps)
