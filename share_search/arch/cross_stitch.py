"""Cross-stitch networks (Misra, Shrivastava, Gupta, Hebert 2016, "Cross-stitch Networks
for Multi-task Learning", CVPR).

One column per task, each a fresh copy of the backbone's stages. After each chosen stage
a cross-stitch unit mixes the columns channel by channel,
x̃ᵢ = Σⱼ αᵢⱼ ⊙ xⱼ, with one α per (target column i, source column j, channel); the channel
is dim 1 of the stage output (C of a feature map, the features of a vector).

What is searched (``space.cross_stitch``):

- where units go: a non-empty subset of the stages. The last stage is eligible too: the
  heads play the part of the paper's task-specific fc8 layers, and the paper puts a unit
  right before them (after pool1, pool2, pool5, fc6 and fc7). ``stages`` narrows the choice.
- α's start: αᵢᵢ = ``alpha_self`` and the rest, 1 - alpha_self, split equally among the
  other columns, so each row sums to one. The paper starts from (α_S, α_D) = (0.9, 0.1),
  the best of the starts it compared for two tasks; the default range [0.85, 0.95] is
  centred on it.
- α's learning-rate multiplier: α lives in [0, 1] and gets small gradients next to the
  layer weights, so the paper scaled its learning rate by up to 10³ under SGD. Adam's step
  does not grow with the gradient's size, so the default range is lower: [1, 100], log.

How the columns run: each stage's T copies run as one module (``_stacked.py``). A stage made
only of linear and element-wise layers (every stage of the ``mlp``, the convnet's last)
runs as one batched matrix product per layer on the stacked columns; other stages run copy
by copy, and a unit stacks their outputs for its mix. On the mlp this took cross-stitch
from 1.19-1.42x the independent columns' step time to 0.90-1.17x (2-5 tasks, batch 64, one
CPU thread, side by side in ``benchmarks/b2_family_cost.py``). One ``torch.vmap`` over
stacked column weights, for every stage, was tried and dropped: 1.3-1.6x on the convnet
and 2.4-3.6x on the mlp.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar, Sequence

import torch
from pydantic import Field, field_validator
from torch import nn

from ..spec.family_options import CrossStitchOptions
from ._base import ArchConfig, Family, FamilyOptions, MultiTaskModel, Phase
from ._stacked import Columns, stack_stage, stacked, unstacked
from ._stages import require_stages
from .backbones import Backbone
from .heads import task_head

if TYPE_CHECKING:  # a type in signatures only: arch does not depend on train at run time
    from ..train.tasks import Task

def canonical_alpha(value: float) -> float:
    return round(float(value), 4)


def canonical_mult(value: float) -> float:
    return float(f"{float(value):.4g}")


class CrossStitchConfig(ArchConfig):
    """Units after ``stages``; α starts at ``alpha_self`` on the diagonal, learns at lr × ``alpha_lr_mult``."""

    family: ClassVar[str] = "cross_stitch"
    stages: tuple[int, ...]
    alpha_self: float = Field(0.9, ge=0.0, le=1.0)
    alpha_lr_mult: float = Field(10.0, gt=0.0)

    @field_validator("stages")
    @classmethod
    def _canonical_stages(cls, v: tuple[int, ...]) -> tuple[int, ...]:
        if not v or min(v) < 0:
            raise ValueError(f"stages must be a non-empty list of stage indices >= 0, got {list(v)}")
        return tuple(sorted(set(v)))

    @field_validator("alpha_self")
    @classmethod
    def _round_alpha(cls, v: float) -> float:
        return canonical_alpha(v)

    @field_validator("alpha_lr_mult")
    @classmethod
    def _round_mult(cls, v: float) -> float:
        return canonical_mult(v)

    def summary(self) -> str:
        return (
            f"cross_stitch: after {','.join(map(str, self.stages))} "
            f"(α0={self.alpha_self:g}, lr×{self.alpha_lr_mult:g})"
        )


class CrossStitch(Family):
    name: ClassVar[str] = "cross_stitch"
    Config: ClassVar[type[ArchConfig]] = CrossStitchConfig
    Options: ClassVar[type[FamilyOptions]] = CrossStitchOptions

    def build(self, config: ArchConfig, backbone: Backbone, tasks: Sequence[Task]) -> MultiTaskModel:
        if len(tasks) < 2:
            raise ValueError(f"a cross-stitch network needs at least 2 tasks, got {len(tasks)}")
        require_stages(config.stages, backbone, "cross-stitch units after stages")
        return CrossStitchNetwork(config, backbone, tasks)

    def stages_used(self, config: CrossStitchConfig) -> int:
        return max(config.stages) + 1

    def layout(self, config, details, n_stages, tasks):
        from .layout import cross_stitch_layout

        return cross_stitch_layout(config, details, n_stages, tasks)


def _channels(shape: Sequence[int]) -> int:
    """Dim 1 of a stage output, the axis α is per (a scalar output counts as one channel)."""
    return shape[0] if shape else 1


def _initial_alpha(n_tasks: int, channels: int, alpha_self: float) -> torch.Tensor:
    alpha = torch.full((n_tasks, n_tasks), (1.0 - alpha_self) / (n_tasks - 1))
    alpha.fill_diagonal_(alpha_self)
    return alpha[:, :, None].repeat(1, 1, channels)


def cross_stitch(alpha: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
    """x̃ᵢ = Σⱼ αᵢⱼ ⊙ xⱼ per channel: ``alpha`` (T, T, C), ``h`` (T, N, C, ...)."""
    # count_macs sees the feature-map mix (a matrix product), not the vector one (element-wise):
    # either is under 2% of a network's MACs
    if h.dim() == 3:  # vectors: a broadcast sum; einsum's per-channel matmuls measured ~5x slower
        return (alpha.unsqueeze(2) * h.unsqueeze(0)).sum(1)
    # feature maps (or one scalar per column): one batched matmul per channel beats T² broadcast products
    n_tasks, batch = h.shape[:2]
    mixed = torch.einsum("ijc,jncr->incr", alpha, h.reshape(n_tasks, batch, alpha.shape[-1], -1))
    return mixed.reshape(h.shape)


class CrossStitchNetwork(MultiTaskModel):
    """Column k (copy k of every stage in ``stages``, and ``heads[k]``) serves task k;
    units ``alphas[str(i)]`` mix the columns after stage i."""

    def __init__(self, config: CrossStitchConfig, backbone: Backbone, tasks: Sequence[Task]):
        super().__init__(config, [t.name for t in tasks])
        columns = [backbone.build_stages() for _ in tasks]
        self.stages = nn.ModuleList(stack_stage(copies) for copies in zip(*columns))
        self.alphas = nn.ParameterDict(
            {
                str(s): nn.Parameter(_initial_alpha(len(tasks), _channels(backbone.stage_shapes[s]), config.alpha_self))
                for s in config.stages
            }
        )
        self.heads = nn.ModuleList(task_head(t, backbone) for t in tasks)

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        h: Columns = x.expand(len(self.heads), *x.shape)  # every column starts from the input, not copied
        for i, stage in enumerate(self.stages):
            h = stage(h)
            if str(i) in self.alphas:
                h = cross_stitch(self.alphas[str(i)], stacked(h))
        return {name: head(hk) for name, head, hk in zip(self.task_names, self.heads, unstacked(h))}

    def column(self, k: int) -> list[nn.Module]:
        """Task k's stages as plain modules holding its weights (copies where stages run stacked)."""
        return [stage.column(k) for stage in self.stages]

    def phases(self, encoder_lr_mult: float = 1.0) -> list[Phase]:
        """One phase; α in its own parameter group at lr × ``alpha_lr_mult``, the columns' stages at lr × ``encoder_lr_mult``."""
        alphas = list(self.alphas.values())
        rest = [p for name, p in self.named_parameters() if p.requires_grad and not name.startswith("alphas.")]
        return [Phase(self.task_names, [*self.encoder_split(rest, 1.0, encoder_lr_mult), (alphas, self.config.alpha_lr_mult)])]

    def encoder_parameters(self) -> list[nn.Parameter]:
        return list(self.stages.parameters())

    def architecture_details(self) -> dict[str, Any]:
        """``alpha["after_stage<s>"][i][j][c]``: how much of task j's channel c enters task i after stage s."""
        return {
            "tasks": list(self.task_names),
            "alpha": {f"after_stage{s}": a.detach().cpu().tolist() for s, a in self.alphas.items()},
        }


FAMILY = CrossStitch()  # found by name through registry.FAMILIES
