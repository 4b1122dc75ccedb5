"""What every sharing family provides, and the registry that finds them by name.

A family is a small object (see ``Family``) that knows its typed ``ArchConfig``, how to
build the network from a backbone's stages, and how to draw it. Its search space (Optuna
sampling, enumeration) is a separate ``space.FamilySpace`` registered under the same name.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar, Mapping, Sequence

from pydantic import BaseModel, ConfigDict
from torch import nn

from ..spec.family_options import FamilyOptions
from .backbones import Backbone
from ..spec.registry import FAMILIES, get_family, register_family  # noqa: F401  (re-exported)

if TYPE_CHECKING:  # a type in signatures only: arch does not depend on train at run time
    from ..train.tasks import Task


class ArchConfig(BaseModel):
    """A family's recipe: typed, frozen, JSON round-trip, canonical (equal iff same network)."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    family: ClassVar[str] = ""

    def summary(self) -> str:
        """One short line for tables and the dashboard, e.g. ``tree: [L R S] > [L R][S]``."""
        raise NotImplementedError

    def to_dict(self) -> dict[str, Any]:
        return {"family": self.family, **self.model_dump(mode="json")}

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)


@dataclass
class Phase:
    """One stretch of training: the tasks whose losses count and the parameters that move.

    ``param_groups`` pairs parameters with a learning-rate multiplier (cross-stitch alpha
    trains faster, a pretrained encoder slower). Most families have one phase; progressive
    networks have one per column.
    """

    tasks: tuple[str, ...]
    param_groups: list[tuple[list[nn.Parameter], float]]
    name: str = "all"


class MultiTaskModel(nn.Module):
    """``forward(x) -> {task: output}``; ``phases()`` tells the trainer what to train when."""

    def __init__(self, config: ArchConfig, task_names: Sequence[str]):
        super().__init__()
        self.config = config
        self.task_names = tuple(task_names)

    def phases(self, encoder_lr_mult: float = 1.0) -> list[Phase]:
        """What to train when; the backbone's stages at lr × ``encoder_lr_mult`` (``train.encoder_lr_mult``)."""
        return [Phase(self.task_names, self.encoder_split([p for p in self.parameters() if p.requires_grad], 1.0, encoder_lr_mult))]

    def encoder_parameters(self) -> list[nn.Parameter]:
        """The parameters of the backbone's stage copies (the encoder), which ``train.encoder_lr_mult``
        scales; a family returns them (the default: none, so every parameter trains at lr)."""
        return []

    def encoder_split(self, params: list[nn.Parameter], multiplier: float, encoder_lr_mult: float) -> list[tuple[list[nn.Parameter], float]]:
        """One parameter group at ``multiplier`` as two: the rest at ``multiplier``, the encoder's at
        ``multiplier × encoder_lr_mult``; one group, unchanged, when the multiplier is 1."""
        if encoder_lr_mult == 1.0:
            return [(params, multiplier)]
        encoder = {id(p) for p in self.encoder_parameters()}
        return [
            ([p for p in params if id(p) not in encoder], multiplier),
            ([p for p in params if id(p) in encoder], multiplier * encoder_lr_mult),
        ]

    def begin_phase(self, index: int) -> None:
        """The trainer calls this before training ``phases()[index]`` (progressive networks
        freeze the other columns here); one-phase families need nothing."""

    def shared_parameters(self) -> list[nn.Parameter]:
        """Parameters GradNorm measures gradient norms on (default: all of them)."""
        return [p for p in self.parameters() if p.requires_grad]

    def architecture_details(self) -> dict[str, Any]:
        """Learned facts worth drawing (e.g. cross-stitch alphas); JSON-serialisable."""
        return {}


class Family:
    """Base for a sharing family's networks; subclasses set ``name``, ``Config``, ``Options``.

    ``Options`` (torch-free, in ``spec``) are what a spec may say under ``families.<name>``."""

    name: ClassVar[str] = ""
    Config: ClassVar[type[ArchConfig]] = ArchConfig
    Options: ClassVar[type[FamilyOptions]] = FamilyOptions

    def build(self, config: ArchConfig, backbone: Backbone, tasks: Sequence[Task]) -> MultiTaskModel:
        raise NotImplementedError

    # Drawing (``arch.layout.layout`` calls these through the registry).
    fixed_depth: ClassVar[bool] = False  # True when a config uses exactly the backbone's stages (trees)

    def stages_used(self, config: ArchConfig) -> int:
        """The fewest backbone stages ``config`` can be drawn on."""
        return 1

    def layout(self, config: ArchConfig, details: Mapping[str, Any], n_stages: int, tasks: Sequence[str] | None):
        """An ``arch.layout.ArchDrawing`` of ``config`` on ``n_stages`` stages (``details``: the trial's
        ``architecture_details``; ``tasks`` orders the columns)."""
        raise ValueError(f"no drawing for family {self.name!r}: its Family defines no layout")


def config_from_dict(data: Mapping[str, Any]) -> ArchConfig:
    """Inverse of ``ArchConfig.to_dict``."""
    data = dict(data)
    family = get_family(data.pop("family"))
    return family.Config.model_validate(data)


def build_model(config: ArchConfig, backbone: Backbone, tasks: Sequence[Task]) -> MultiTaskModel:
    """The one place a network is built from a recipe (trials, export, reload)."""
    return get_family(config.family).build(config, backbone, tasks)
