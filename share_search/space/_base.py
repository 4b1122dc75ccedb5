"""What every family's search space provides: define-by-run sampling and its inverse.

A ``FamilySpace`` turns an Optuna trial into a family's ``ArchConfig`` (``sample``), a
config back into the parameters that reproduce it (``to_params``), and lists its discrete
space (``enumerate``) for grids and sizes. The same ``sample`` replayed on an
``optuna.trial.FixedTrial`` decodes stored parameters, so trials, export and reload share
one code path. The network itself is the family's (``arch``); this is only the space.
"""

from __future__ import annotations

from typing import Any, ClassVar, Mapping, Sequence

import optuna

from ..arch import ArchConfig
from ..spec.family_options import FamilyOptions


class FamilySpace:
    """Base for a family's search space; subclasses set ``name`` (the family's name)."""

    name: ClassVar[str] = ""

    def sample(self, trial: optuna.Trial, tasks: Sequence[str], n_stages: int, options: FamilyOptions) -> ArchConfig:
        """Define-by-run sampling; parameter names start with ``<family>.`` and read well."""
        raise NotImplementedError

    def to_params(self, config: ArchConfig, tasks: Sequence[str], n_stages: int, options: FamilyOptions) -> dict[str, Any]:
        """The Optuna parameters that make ``sample`` reproduce ``config`` (for replays and grids)."""
        raise NotImplementedError

    def enumerate(self, tasks: Sequence[str], n_stages: int, options: FamilyOptions) -> list[ArchConfig]:
        """Every architecture of the discrete space once (continuous options at their defaults)."""
        raise NotImplementedError

    def space_size(self, tasks: Sequence[str], n_stages: int, options: FamilyOptions) -> int:
        """How many distinct discrete architectures the space holds."""
        return len(self.enumerate(tasks, n_stages, options))

    def decode(self, params: Mapping[str, Any], tasks: Sequence[str], n_stages: int, options: FamilyOptions) -> ArchConfig:
        """Stored Optuna parameters -> config, by replaying ``sample`` on a FixedTrial."""
        mine = {k: v for k, v in params.items() if k.startswith(self.name + ".")}
        return self.sample(optuna.trial.FixedTrial(mine), tasks, n_stages, options)
