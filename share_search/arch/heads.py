"""Task heads: what turns the last stage's output into one task's prediction.

A per-sample task gets ``linear`` (flatten, one linear layer: the head every family had
before heads were chosen). A dense task gets a decoder that predicts at the last stage's
resolution and upsamples bilinearly to the input's: ``deeplab`` (DeepLabv3's atrous
spatial pyramid pooling, Chen, Papandreou, Schroff, Adam 2017, "Rethinking Atrous
Convolution for Semantic Image Segmentation") by default, or the lighter ``fcn`` (one 3x3
convolution, then the classifier, as torchvision's FCN head). Heads are found by name in
``registry.HEADS``; each is ``fn(in_shape, n_outputs, input_shape, **options)``.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import SpecError
from ..spec.heads import DENSE_TASK_TYPES, default_head
from ..spec.registry import HEADS, create_head, register_head  # noqa: F401  (register_head re-exported)

if TYPE_CHECKING:  # types in signatures only: arch does not depend on train at run time
    from ..train.tasks import Task
    from .backbones import Backbone


def linear(in_shape: Sequence[int], n_outputs: int, input_shape: Sequence[int], pool: bool = False) -> nn.Module:
    """Flatten the last stage's output, then one linear layer; ``pool``: average a feature map
    over its positions first (a ResNet's global pooling), so the layer has C inputs, not C·H·W."""
    if pool and len(in_shape) > 1:
        return nn.Sequential(_MeanOverPositions(), nn.Linear(in_shape[0], n_outputs))
    return nn.Sequential(nn.Flatten(), nn.Linear(math.prod(in_shape), n_outputs))


class _MeanOverPositions(nn.Module):
    """(N, C, ...) -> (N, C): global average pooling over every position."""

    def forward(self, x):
        return x.flatten(2).mean(2)


def _feature_map(in_shape: Sequence[int], head: str) -> int:
    """The channels of a (C, H, W) stage output; a dense head has nothing to decode otherwise."""
    if len(in_shape) != 3:
        raise ValueError(f"the {head} head decodes a feature map (C, H, W), but the backbone's last stage gives shape {tuple(in_shape)}")
    return int(in_shape[0])


def _conv_bn_relu(c_in: int, c_out: int, kernel: int = 1, dilation: int = 1) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(c_in, c_out, kernel, padding=dilation * (kernel // 2), dilation=dilation, bias=False),
        nn.BatchNorm2d(c_out),
        nn.ReLU(),
    )


class _Upsampled(nn.Module):
    """A decoder's logits at the last stage's resolution, upsampled bilinearly to the input's."""

    def __init__(self, decoder: nn.Module, size: Sequence[int]):
        super().__init__()
        self.decoder = decoder
        self.size = tuple(int(s) for s in size)

    def forward(self, x):
        y = self.decoder(x)
        return y if tuple(y.shape[-2:]) == self.size else F.interpolate(y, size=self.size, mode="bilinear", align_corners=False)


def predict_at_input_size(model: nn.Module) -> nn.Module:
    """Make ``model``'s dense heads upsample to each input's own height and width rather than the
    size the network was built for, so a loaded network predicts every pixel of any image its
    stages take (a convolutional encoder takes any size). Returns ``model``."""
    heads = [m for m in model.modules() if isinstance(m, _Upsampled)]

    def follow(module: nn.Module, args: tuple) -> None:
        size = tuple(int(s) for s in args[0].shape[-2:])
        for head in heads:
            head.size = size

    if heads:
        model.register_forward_pre_hook(follow)
    return model


def _input_size(input_shape: Sequence[int]) -> tuple[int, int]:
    if len(input_shape) not in (2, 3):
        raise ValueError(f"a dense head predicts per pixel of an image input (H, W) or (C, H, W), got input shape {tuple(input_shape)}")
    return tuple(input_shape[-2:])  # type: ignore[return-value]


class ASPP(nn.Module):
    """Atrous spatial pyramid pooling: a 1x1 branch, one dilated 3x3 branch per rate and an
    image-pooling branch, concatenated and projected by a 1x1 convolution.

    The pooling branch has no BatchNorm (DeepLabv3 has one): on a pooled 1x1 map it would
    see one value per channel and sample, so a training batch of one would fail."""

    def __init__(self, c_in: int, channels: int, rates: Sequence[int]):
        super().__init__()
        self.branches = nn.ModuleList([_conv_bn_relu(c_in, channels)] + [_conv_bn_relu(c_in, channels, 3, r) for r in rates])
        self.pooling = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Conv2d(c_in, channels, 1), nn.ReLU())
        self.project = _conv_bn_relu(channels * (len(rates) + 2), channels)

    def forward(self, x):
        pooled = self.pooling(x).expand(-1, -1, *x.shape[-2:])
        return self.project(torch.cat([b(x) for b in self.branches] + [pooled], 1))


def deeplab(
    in_shape: Sequence[int], n_outputs: int, input_shape: Sequence[int], channels: int = 256, rates: Sequence[int] = (6, 12, 18)
) -> nn.Module:
    """DeepLabv3's head: ASPP, a 3x3 convolution, a 1x1 classifier, bilinear upsampling to
    the input's size. ``rates``: (6, 12, 18) suit output stride 16; the paper doubles them at 8."""
    c_in = _feature_map(in_shape, "deeplab")
    if channels < 1 or not rates or any(int(r) < 1 for r in rates):
        raise ValueError(f"the deeplab head needs channels >= 1 and dilation rates >= 1, got channels={channels}, rates={list(rates)}")
    decoder = nn.Sequential(ASPP(c_in, channels, [int(r) for r in rates]), _conv_bn_relu(channels, channels, 3), nn.Conv2d(channels, n_outputs, 1))
    return _Upsampled(decoder, _input_size(input_shape))


def fcn(in_shape: Sequence[int], n_outputs: int, input_shape: Sequence[int], channels: int | None = None) -> nn.Module:
    """A light dense head: one 3x3 convolution (``channels``, default a quarter of the input's),
    a 1x1 classifier, bilinear upsampling to the input's size."""
    c_in = _feature_map(in_shape, "fcn")
    channels = max(c_in // 4, 1) if channels is None else channels
    if channels < 1:
        raise ValueError(f"the fcn head needs channels >= 1, got {channels}")
    decoder = nn.Sequential(_conv_bn_relu(c_in, channels, 3), nn.Conv2d(channels, n_outputs, 1))
    return _Upsampled(decoder, _input_size(input_shape))


linear.dense = False
deeplab.dense = True
fcn.dense = True


def task_head(task: Task, backbone: Backbone) -> nn.Module:
    """The head ``task`` names (``task.head``, ``task.head_options``), or its type's default,
    on the backbone's last stage; every family builds its heads here."""
    name = getattr(task, "head", None) or default_head(task.type)
    options = dict(getattr(task, "head_options", None) or {})
    return create_head(name, backbone.output_shape, task.n_outputs, backbone.input_shape, **options)


def check_task_head(task: Task, backbone: Backbone) -> None:
    """Build ``task``'s head once, so a head that does not fit its task, the backbone or its
    options is a spec error naming ``tasks.<t>.head`` before any trial starts."""
    name = getattr(task, "head", None) or default_head(task.type)
    dense = getattr(HEADS[name], "dense", None)
    wanted = task.type in DENSE_TASK_TYPES
    if dense is not None and dense != wanted:
        kind = "dense (per-pixel)" if dense else "per-sample"
        raise SpecError(f"tasks.{task.name}.head", f"head {name!r} is for {kind} tasks, but {task.name!r} is a {task.type} task (its default head: {default_head(task.type)!r})")
    try:
        task_head(task, backbone)
    except (TypeError, ValueError) as exc:
        raise SpecError(f"tasks.{task.name}.head", f"{name}: {exc}") from exc

