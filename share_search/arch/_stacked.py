"""Copies of one stage run as one module on stacked activations (T, N, ...).

A cross-stitch network keeps T copies of every stage, one per task column, and its units
mix the columns' outputs stacked. When a stage is made only of layers with a batched
form (``nn.Linear``, ``nn.Flatten`` and element-wise layers: every stage of the ``mlp``
backbone), its T copies run as one ``torch.baddbmm`` per linear layer on the stacked
tensor: one op where the loop runs T, and no stack or unbind around the units. Small
layers are bound by the fixed cost of each op on a CPU, so this is where it pays: a
cross-stitch mlp's step fell from 1.19-1.42x the independent columns' to 0.90-1.17x
(``benchmarks/b2_family_cost.py``). Other stages (convolutions, normalisation, user
layers) run copy by copy.

The copies are built first and their weights stacked, so a stacked stage starts from
exactly the weights the loop would have, and ``column(k)`` gives copy k back as a plain
module.
"""

from __future__ import annotations

import copy
from typing import Optional, Sequence, Union

import torch
from torch import nn

#: parameterless layers that act element by element, so they run on (T, N, ...) unchanged
_ELEMENTWISE = (
    nn.Identity, nn.ReLU, nn.ReLU6, nn.LeakyReLU, nn.ELU, nn.SELU, nn.CELU, nn.GELU, nn.SiLU, nn.Mish,
    nn.Tanh, nn.Sigmoid, nn.Hardtanh, nn.Hardswish, nn.Hardsigmoid, nn.Softplus, nn.Dropout,
)

Columns = Union[torch.Tensor, Sequence[torch.Tensor]]  # stacked (T, N, ...) or one tensor per column


def stacked(h: Columns) -> torch.Tensor:
    """The columns as one (T, N, ...) tensor."""
    return h if isinstance(h, torch.Tensor) else torch.stack(list(h))


def unstacked(h: Columns) -> list[torch.Tensor]:
    """The columns as one tensor each."""
    return list(h.unbind(0)) if isinstance(h, torch.Tensor) else list(h)


class StackedLinear(nn.Module):
    """T ``nn.Linear`` layers of one shape: ``weight[k]`` is copy k's weight transposed, (in, out),
    and ``bias[k, 0]`` its bias.

    The weight is stored as the product reads it: stored as (T, out, in) and transposed in
    ``forward``, its gradient came back transposed and autograd copied it into place on every
    step, which cost the mlp about a fifth of its step time here.
    """

    def __init__(self, copies: Sequence[nn.Linear]):
        super().__init__()
        self.weight = nn.Parameter(torch.stack([c.weight.detach().t() for c in copies]))  # (T, in, out)
        self.bias = nn.Parameter(torch.stack([c.bias.detach()[None] for c in copies])) if copies[0].bias is not None else None  # (T, 1, out)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        if self.bias is None:
            return torch.bmm(h, self.weight)
        return torch.baddbmm(self.bias, h, self.weight)

    def column(self, k: int) -> nn.Linear:
        in_features, out_features = self.weight.shape[1:]
        layer = nn.Linear(in_features, out_features, bias=self.bias is not None)
        with torch.no_grad():
            layer.weight.copy_(self.weight[k].t())
            if self.bias is not None:
                layer.bias.copy_(self.bias[k, 0])
        return layer


class StackedFlatten(nn.Module):
    """``nn.Flatten(start_dim=1)`` of every column: flattens from dim 2 of (T, N, ...)."""

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return h.flatten(2)

    def column(self, k: int) -> nn.Flatten:
        return nn.Flatten()


class StackedStage(nn.Module):
    """A stage's T copies as one module: (T, N, ...) in, (T, N, ...) out."""

    def __init__(self, layers: Sequence[nn.Module]):
        super().__init__()
        self.layers = nn.ModuleList(layers)

    def forward(self, h: Columns) -> torch.Tensor:
        h = stacked(h)
        for layer in self.layers:
            h = layer(h)
        return h

    def column(self, k: int) -> nn.Sequential:
        """Copy k as a plain module with its own weights, the way the loop would run it."""
        return nn.Sequential(*(layer.column(k) if hasattr(layer, "column") else copy.deepcopy(layer) for layer in self.layers))


class LoopedStage(nn.Module):
    """A stage with no batched form: its T copies, run one per column."""

    def __init__(self, copies: Sequence[nn.Module]):
        super().__init__()
        self.copies = nn.ModuleList(copies)

    def forward(self, h: Columns) -> list[torch.Tensor]:
        return [stage(x) for stage, x in zip(self.copies, unstacked(h))]

    def column(self, k: int) -> nn.Module:
        return self.copies[k]


def _layers(stage: nn.Module) -> list[nn.Module]:
    return list(stage) if type(stage) is nn.Sequential else [stage]


def _stack_layer(copies: Sequence[nn.Module]) -> Optional[nn.Module]:
    first = copies[0]
    if type(first) is nn.Linear:
        return StackedLinear(copies)
    if type(first) is nn.Flatten and first.start_dim == 1 and first.end_dim == -1:
        return StackedFlatten()
    if type(first) in _ELEMENTWISE:
        return first
    return None


def stack_stage(copies: Sequence[nn.Module]) -> Union[StackedStage, LoopedStage]:
    """One module for a stage's copies: stacked when every layer has a batched form, else a loop."""
    per_copy = [_layers(c) for c in copies]
    if all(len(layers) == len(per_copy[0]) for layers in per_copy):
        stacked_layers = []
        for same_layer in zip(*per_copy):
            if any(type(layer) is not type(same_layer[0]) for layer in same_layer):
                break
            layer = _stack_layer(same_layer)
            if layer is None:
                break
            stacked_layers.append(layer)
        else:
            return StackedStage(stacked_layers)
    return LoopedStage(copies)
