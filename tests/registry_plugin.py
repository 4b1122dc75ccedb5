"""A user's plugin module, as a spec names it under ``plugins``: a weighting and a family.

``wide_head`` is hard sharing with a searched hidden layer in every head; ``halved`` is
half the plain sum of the losses. Both register on import, in the driver and in every
Ray worker that imports this module.
"""

from __future__ import annotations

import dataclasses
import math
from typing import ClassVar

from torch import nn

from share_search import FamilySpace, register_family, register_weighting
from share_search.arch import ArchConfig, Family, MultiTaskModel
from share_search.arch.tree import TreeConfig
from share_search.spec.family_options import FamilyOptions
from share_search.train.weighting import Weighting


@register_weighting("halved")
class Halved(Weighting):
    def backward(self, losses, params, shared):
        total = 0.5 * sum(losses[t] for t in self.tasks)
        total.backward()
        return total.detach()


class WideHeadConfig(ArchConfig):
    family: ClassVar[str] = "wide_head"
    width: int

    def summary(self) -> str:
        return f"wide_head: shared trunk, heads {self.width} wide"


class WideHeadOptions(FamilyOptions):
    widths: list[int] = [8, 16]


class WideHeadModel(MultiTaskModel):
    def __init__(self, config, backbone, tasks):
        super().__init__(config, [t.name for t in tasks])
        self.trunk = nn.Sequential(*backbone.build_stages())
        n_in = math.prod(backbone.output_shape)
        self.heads = nn.ModuleDict(
            {t.name: nn.Sequential(nn.Flatten(), nn.Linear(n_in, config.width), nn.ReLU(), nn.Linear(config.width, t.n_outputs)) for t in tasks}
        )

    def forward(self, x):
        h = self.trunk(x)
        return {t: self.heads[t](h) for t in self.task_names}


@register_family("wide_head")
class WideHead(Family, FamilySpace):  # its networks and its search space in one class
    Config = WideHeadConfig
    Options = WideHeadOptions

    def sample(self, trial, tasks, n_stages, options):
        return WideHeadConfig(width=trial.suggest_categorical("wide_head.width", options.widths))

    def to_params(self, config, tasks, n_stages, options):
        return {"wide_head.width": config.width}

    def enumerate(self, tasks, n_stages, options):
        return [WideHeadConfig(width=w) for w in options.widths]

    def build(self, config, backbone, tasks):
        return WideHeadModel(config, backbone, tasks)

    def layout(self, config, details, n_stages, tasks):
        from share_search.arch.layout import tree_layout

        trunk = tree_layout(TreeConfig.hard_sharing(tasks, n_stages), {}, n_stages, tasks)
        return dataclasses.replace(trunk, family=self.name, title=config.summary(), notes=(f"every head: {config.width} hidden units",))
