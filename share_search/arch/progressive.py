"""Progressive networks (Rusu, Rabinowitz, Desjardins, Soyer, Kirkpatrick, Kavukcuoglu,
Pascanu, Hadsell 2016, "Progressive Neural Networks", arXiv:1606.04671).

One column per task (a fresh copy of the backbone's stages), trained one after another in
a searched task order. While column k trains, columns j < k are frozen and feed it through
lateral connections, so earlier tasks cannot be forgotten. The paper's layer is

    h_i^(k) = f(W_i^(k) h_{i-1}^(k) + Σ_{j<k} U_i^(k:j) h_{i-1}^(j)).

A stage here is W *with* its non-linearity and pooling, so the lateral is added to the
stage's output instead of before f:

    out_i^(k) = stage_i^(k)(h_{i-1}^(k)) + Σ_{j<k} U_i^(k:j)(h_{i-1}^(j)).

This works for any backbone's stages at the cost of U bypassing f (and a ResNet block's
BatchNorm). U maps stage i's input shape to its output shape: a ``Linear`` between
vectors; between feature maps, average pooling to the output's spatial size (global for
a vector output) and a 1x1 convolution; any other pair of shapes, flatten + ``Linear``.
All earlier columns go through one map on their concatenated inputs, which equals the sum
of one U per column.

Lateral kinds: ``linear`` is the formula above. ``adapter`` is the paper's non-linear
lateral, U σ(V (a ⊙ h^(<k))): a learned scalar a (initialised to a small random value, to
match the earlier columns' scale), a projection V of the concatenated earlier columns down
to one column's width (the paper's n_{i-1}), a ReLU, then U.

What is searched (``space.progressive``): the order (all permutations, one categorical, ``"a > b > c"``), the
stages that get laterals (a non-empty subset of 1..B-1: stage 0 reads the input itself,
which every column shares) and the lateral kind.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any, ClassVar, Literal, Optional, Sequence

import torch
import torch.nn.functional as F
from pydantic import field_validator
from torch import nn

from ..spec.family_options import ProgressiveOptions
from ._base import ArchConfig, Family, FamilyOptions, MultiTaskModel, Phase
from ._stages import require_stages
from .backbones import Backbone
from .heads import task_head

if TYPE_CHECKING:  # a type in signatures only: arch does not depend on train at run time
    from ..train.tasks import Task



class ProgressiveConfig(ArchConfig):
    """Columns trained in ``order``; ``lateral`` connections into ``lateral_stages`` of later columns."""

    family: ClassVar[str] = "progressive"
    order: tuple[str, ...]
    lateral_stages: tuple[int, ...]
    lateral: Literal["linear", "adapter"] = "adapter"

    @field_validator("order")
    @classmethod
    def _distinct(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        if len(set(v)) != len(v):
            raise ValueError(f"order must name each task once, got {list(v)}")
        return v

    @field_validator("lateral_stages")
    @classmethod
    def _canonical_stages(cls, v: tuple[int, ...]) -> tuple[int, ...]:
        if not v or min(v) < 1:
            raise ValueError(f"lateral_stages must be a non-empty list of stages >= 1 (stage 0 reads the input), got {list(v)}")
        return tuple(sorted(set(v)))

    def summary(self) -> str:
        return f"progressive: {' → '.join(self.order)}, {self.lateral} @{','.join(map(str, self.lateral_stages))}"


class Progressive(Family):
    name: ClassVar[str] = "progressive"
    Config: ClassVar[type[ArchConfig]] = ProgressiveConfig
    Options: ClassVar[type[FamilyOptions]] = ProgressiveOptions

    def build(self, config: ArchConfig, backbone: Backbone, tasks: Sequence[Task]) -> MultiTaskModel:
        names = [t.name for t in tasks]
        if len(tasks) < 2 or sorted(config.order) != sorted(names):
            raise ValueError(f"the order must list the tasks {names} (at least 2) once each, got {list(config.order)}")
        require_stages(config.lateral_stages, backbone, "laterals into stages")
        return ProgressiveNetwork(config, backbone, tasks)

    def stages_used(self, config: ProgressiveConfig) -> int:
        return max(config.lateral_stages) + 1

    def layout(self, config, details, n_stages, tasks):
        from .layout import progressive_layout

        return progressive_layout(config, details, n_stages, tasks)


class _Scale(nn.Module):
    """The adapter's learned scalar, initialised small and random as in the paper."""

    def __init__(self):
        super().__init__()
        self.scale = nn.Parameter(torch.empty(()).uniform_(0.01, 0.1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.scale * x


_POOLS = {1: F.adaptive_avg_pool1d, 2: F.adaptive_avg_pool2d, 3: F.adaptive_avg_pool3d}
_CONVS = {1: nn.Conv1d, 2: nn.Conv2d, 3: nn.Conv3d}


class Lateral(nn.Module):
    """Everything the earlier columns add to one stage of column k, read from their inputs to that stage."""

    def __init__(self, n_sources: int, in_shape: Sequence[int], out_shape: Sequence[int], adapter: bool):
        super().__init__()
        self.out_shape = tuple(out_shape)
        dims = len(in_shape) - 1
        self.spatial = dims in _CONVS and len(out_shape) in (1, len(in_shape))
        if self.spatial:
            self.size = tuple(out_shape[1:]) or (1,) * dims
            self.pool = _POOLS[dims]
            width, out_width = in_shape[0], out_shape[0]

            def linear(a: int, b: int) -> nn.Module:
                return _CONVS[dims](a, b, 1)

        else:
            width, out_width = math.prod(in_shape), math.prod(out_shape)
            linear = nn.Linear
        if adapter:
            layers = [_Scale(), linear(n_sources * width, width), nn.ReLU(), linear(width, out_width)]
        else:
            layers = [linear(n_sources * width, out_width)]
        self.maps = nn.Sequential(*layers)

    def forward(self, sources: Sequence[torch.Tensor]) -> torch.Tensor:
        if not self.spatial:
            return self.maps(torch.cat([s.flatten(1) for s in sources], 1)).reshape(-1, *self.out_shape)
        h = torch.cat(list(sources), 1)
        if tuple(h.shape[2:]) != self.size:
            h = self.pool(h, self.size)
        h = self.maps(h)
        return h.flatten(1) if len(self.out_shape) == 1 else h


class ProgressiveNetwork(MultiTaskModel):
    """Column k (``columns[k]``, ``laterals[k]``, ``heads[k]``) serves task ``config.order[k]``."""

    def __init__(self, config: ProgressiveConfig, backbone: Backbone, tasks: Sequence[Task]):
        super().__init__(config, [t.name for t in tasks])
        by_name = {t.name: t for t in tasks}
        adapter = config.lateral == "adapter"
        self.columns = nn.ModuleList(nn.ModuleList(backbone.build_stages()) for _ in config.order)
        self.laterals = nn.ModuleList(
            nn.ModuleDict(
                {
                    str(i): Lateral(k, backbone.stage_input_shape(i), backbone.stage_shapes[i], adapter)
                    for i in (config.lateral_stages if k else ())
                }
            )
            for k in range(len(config.order))
        )
        self.heads = nn.ModuleList(task_head(by_name[t], backbone) for t in config.order)
        self.active_phase: Optional[int] = None  # set by begin_phase; None: all columns train

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        stage_inputs: list[dict[int, torch.Tensor]] = []  # column j -> {lateral stage: its input}
        outputs = {}
        # While column k trains, later columns cannot influence its loss: skip them.
        last = self.active_phase if self.training and self.active_phase is not None else len(self.columns) - 1
        for k, (stages, laterals, head) in enumerate(zip(self.columns[: last + 1], self.laterals, self.heads)):
            seen: dict[int, torch.Tensor] = {}
            with torch.set_grad_enabled(torch.is_grad_enabled() and self.active_phase in (None, k)):
                h = x
                for i, stage in enumerate(stages):
                    if i in self.config.lateral_stages:
                        seen[i] = h
                    out = stage(h)
                    if str(i) in laterals:
                        out = out + laterals[str(i)]([stage_inputs[j][i] for j in range(k)])
                    h = out
                outputs[self.config.order[k]] = head(h)
            stage_inputs.append(seen)
        return {name: outputs[name] for name in self.task_names if name in outputs}

    def phases(self, encoder_lr_mult: float = 1.0) -> list[Phase]:
        """Phase k trains column k (its stages, the laterals into it, its head) on task ``order[k]``
        alone; the column's stages at lr × ``encoder_lr_mult`` (laterals start untrained: at lr)."""
        return [
            Phase(
                (task,),
                self.encoder_split([p for m in parts for p in m.parameters() if p.requires_grad], 1.0, encoder_lr_mult),
                name=task,
            )
            for task, *parts in zip(self.config.order, self.columns, self.laterals, self.heads)
        ]

    def encoder_parameters(self) -> list[nn.Parameter]:
        return list(self.columns.parameters())

    def begin_phase(self, index: int) -> None:
        """From now on only column ``index`` trains: the others run without gradients and in
        eval mode (BatchNorm statistics fixed), whatever ``train()`` is called later."""
        if not 0 <= index < len(self.columns):
            raise IndexError(f"phase index must be in 0..{len(self.columns) - 1}, got {index}")
        self.active_phase = index
        self.train(self.training)

    def train(self, mode: bool = True) -> "ProgressiveNetwork":
        super().train(mode)
        if self.active_phase is not None:
            for k, parts in enumerate(zip(self.columns, self.laterals, self.heads)):
                if k != self.active_phase:
                    for part in parts:
                        part.eval()
        return self

    def architecture_details(self) -> dict[str, Any]:
        """The column order and, for adapters, each learned input scale ``scale["column<k>.stage<i>"]``."""
        scales = {
            f"column{k}.stage{i}": lateral.maps[0].scale.item()
            for k, laterals in enumerate(self.laterals)
            for i, lateral in laterals.items()
            if isinstance(lateral.maps[0], _Scale)
        }
        return {"order": list(self.config.order), "scale": scales}


FAMILY = Progressive()  # found by name through registry.FAMILIES
