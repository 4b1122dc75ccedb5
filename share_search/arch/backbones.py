"""Backbones as ordered lists of stages.

Every sharing family is built from a backbone's stages only, so a new backbone never
needs family code. A backbone is a *recipe*: ``build_stages()`` returns fresh, freshly
initialised stage modules each call (a tree node, a cross-stitch column and a progressive
column each own a copy). Output shapes are found once by a dummy forward pass.

User backbones: ``module:function`` with signature ``function(input_shape, **options)``
returning a list of ``nn.Module`` stages, or a function added with
``registry.register_backbone(name)`` in a plugin module. The built-ins below are found by
name through ``registry.BACKBONES``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

import torch
from torch import nn

from ..errors import ShareSearchError, SpecError, UserCodeError
from ..spec.registry import BACKBONES, register_backbone  # noqa: F401  (register_backbone re-exported)
from ..user_code import import_user_function

StageBuilder = Callable[..., Sequence[nn.Module]]


def mlp(input_shape: Sequence[int], widths: Sequence[int] = (128, 128, 64)) -> list[nn.Module]:
    """Flatten, then one ``Linear + ReLU`` stage per width."""
    stages: list[nn.Module] = []
    n_in = math.prod(input_shape)
    for i, width in enumerate(widths):
        layers: list[nn.Module] = [nn.Flatten()] if i == 0 else []
        layers += [nn.Linear(n_in, width), nn.ReLU()]
        stages.append(nn.Sequential(*layers))
        n_in = width
    return stages


def _as_image(input_shape: Sequence[int]) -> tuple[int, int, int]:
    if len(input_shape) == 2:
        return (1, *input_shape)
    if len(input_shape) == 3:
        return tuple(input_shape)  # type: ignore[return-value]
    raise SpecError("backbone.name", f"convolutional backbones need an image input (H, W) or (C, H, W), got shape {tuple(input_shape)}")


class _Unsqueeze(nn.Module):
    """Give a (N, H, W) batch a channel axis so grey images work with conv stages."""

    def forward(self, x):
        return x.unsqueeze(1) if x.dim() == 3 else x


def convnet(input_shape: Sequence[int], channels: Sequence[int] = (16, 32), hidden: int = 64) -> list[nn.Module]:
    """LeNet-like: ``conv3x3 + ReLU + maxpool`` stages, then one fully connected stage."""
    c, h, w = _as_image(input_shape)
    stages: list[nn.Module] = []
    for i, out in enumerate(channels):
        layers: list[nn.Module] = [_Unsqueeze()] if i == 0 else []
        layers += [nn.Conv2d(c, out, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2)]
        stages.append(nn.Sequential(*layers))
        c, h, w = out, h // 2, w // 2
    stages.append(nn.Sequential(nn.Flatten(), nn.Linear(c * h * w, hidden), nn.ReLU()))
    return stages


class _BasicBlock(nn.Module):
    """A ResNet basic block (He et al. 2016) with an optional strided projection."""

    def __init__(self, c_in: int, c_out: int, stride: int):
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, c_out, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(c_out)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(c_out)
        self.skip = (
            nn.Identity()
            if stride == 1 and c_in == c_out
            else nn.Sequential(nn.Conv2d(c_in, c_out, 1, stride, bias=False), nn.BatchNorm2d(c_out))
        )

    def forward(self, x):
        y = torch.relu(self.bn1(self.conv1(x)))
        return torch.relu(self.bn2(self.conv2(y)) + self.skip(x))


def resnet(input_shape: Sequence[int], channels: Sequence[int] = (16, 32, 64), pool: bool = True) -> list[nn.Module]:
    """A small ResNet: a stem stage, one basic block per width (stride 2 after the first), then
    global pooling; ``pool: false`` keeps the last block's feature map, the encoder a dense
    task's decoder needs."""
    c, _, _ = _as_image(input_shape)
    stem = nn.Sequential(_Unsqueeze(), nn.Conv2d(c, channels[0], 3, 1, 1, bias=False), nn.BatchNorm2d(channels[0]), nn.ReLU())
    stages: list[nn.Module] = [stem]
    c = channels[0]
    for i, out in enumerate(channels):
        block = _BasicBlock(c, out, 1 if i == 0 else 2)
        if pool and i == len(channels) - 1:
            block = nn.Sequential(block, nn.AdaptiveAvgPool2d(1), nn.Flatten())
        stages.append(block)
        c = out
    return stages


@dataclass(frozen=True)
class Backbone:
    """A named stage recipe with the per-sample output shape of every stage."""

    name: str
    input_shape: tuple[int, ...]
    options: dict[str, Any] = field(default_factory=dict, hash=False, compare=False)
    builder: StageBuilder = field(default=mlp, repr=False, compare=False, hash=False)
    stage_shapes: tuple[tuple[int, ...], ...] = ()
    weights: Any = field(default=None, repr=False, compare=False, hash=False)  # a weights.StageWeights every copy starts from

    @property
    def weights_note(self) -> str:
        """What ``backbone.weights`` loaded and ignored ("" without a weights file)."""
        return self.weights.note if self.weights is not None else ""

    @property
    def n_stages(self) -> int:
        return len(self.stage_shapes)

    @property
    def output_shape(self) -> tuple[int, ...]:
        return self.stage_shapes[-1]

    def stage_input_shape(self, i: int) -> tuple[int, ...]:
        return self.input_shape if i == 0 else self.stage_shapes[i - 1]

    def build_stages(self) -> list[nn.Module]:
        """Fresh stage modules (new parameters) for one column or tree node, holding the
        loaded encoder weights when there are some."""
        stages = list(self.builder(self.input_shape, **self.options))
        if self.weights is not None:
            with torch.no_grad():
                for stage, state in zip(stages, self.weights.per_stage):
                    stage.load_state_dict(state)
        return stages


def _resolve_builder(name: str) -> StageBuilder:
    if name in BACKBONES:
        return BACKBONES[name]
    if ":" not in name:
        known = ", ".join(BACKBONES)
        raise SpecError("backbone.name", f"unknown backbone {name!r} (known: {known}, or module:function)")
    return import_user_function(name, "backbone.name")


def create_backbone(name: str, input_shape: Sequence[int], **options):
    """The backbone ``name`` measured on ``input_shape`` (a ``Backbone``); the registry's ``create_x`` for backbones, here because it builds modules."""
    return make_backbone(name, input_shape, options, builder=BACKBONES[name])


def make_backbone(
    name: str,
    input_shape: Sequence[int],
    options: dict[str, Any] | None = None,
    builder: StageBuilder | None = None,
    weights: str | None = None,
) -> Backbone:
    """Resolve ``name`` (unless its ``builder`` is given) and measure the stage shapes with
    one dummy forward pass; ``weights``: a local file every copy of the stages starts from
    (``backbone.weights``, see ``arch.weights``)."""
    options = dict(options or {})
    builder = builder or _resolve_builder(name)
    input_shape = tuple(int(s) for s in input_shape)
    try:
        stages = list(builder(input_shape, **options))
    except TypeError as exc:
        raise SpecError("backbone.options", f"{name}: {exc}") from exc
    except ShareSearchError:
        raise
    except Exception as exc:
        if name in BACKBONES:
            raise
        raise UserCodeError("backbone.name", name, exc) from exc
    if not stages:
        raise SpecError("backbone", f"backbone {name!r} has zero stages; it needs at least one")
    for i, stage in enumerate(stages):
        if not isinstance(stage, nn.Module):
            raise SpecError("backbone.name", f"{name}: stage {i} is a {type(stage).__name__}, not an nn.Module")
    shapes = []
    x = torch.zeros(2, *input_shape)
    with torch.no_grad():
        for i, stage in enumerate(stages):
            stage.eval()
            try:
                x = stage(x)
            except Exception as exc:
                raise SpecError("backbone", f"{name}: stage {i} fails on input of shape {tuple(x.shape[1:])}: {exc}") from exc
            shapes.append(tuple(x.shape[1:]))
    loaded = None
    if weights is not None:
        from .weights import load_stage_weights

        loaded = load_stage_weights(weights, stages)
    return Backbone(name=name, input_shape=input_shape, options=options, builder=builder, stage_shapes=tuple(shapes), weights=loaded)


def make_head(in_shape: Sequence[int], n_outputs: int) -> nn.Module:
    """A per-sample task head: flatten the last stage's output, then one linear layer (``heads.linear``)."""
    from .heads import linear

    return linear(in_shape, n_outputs, ())
