"""The space of cross-stitch networks: after which stages units go, and their α options.

Which stages carry a unit is a searched non-empty subset (``space._stages``); ``alpha_self``
and ``alpha_lr_mult`` are fixed, a choice list or a range, as the family's options say.
"""

from __future__ import annotations

import itertools
from typing import Any, ClassVar, Sequence

import optuna

from ..arch import ArchConfig
from ..arch.cross_stitch import CrossStitchConfig, canonical_alpha, canonical_mult
from ..spec.family_options import CrossStitchOptions, FamilyOptions
from ..spec.model import Param
from ._base import FamilySpace
from ._stages import all_subsets, eligible_stages, sample_subset, subset_params

_STAGE_PREFIX = "cross_stitch.after_stage"


def _option_param(option: Param, value: float, canonical, name: str) -> float:
    """The Optuna value that ``option.suggest`` must return to yield the canonical ``value``."""
    if option.kind == "range":
        return value
    for choice in option.choices:
        if canonical(choice) == value:
            return choice
    raise ValueError(f"{name}={value} is not one of the options' choices {list(option.choices)}")


class CrossStitchSpace(FamilySpace):
    name: ClassVar[str] = "cross_stitch"

    def _eligible(self, n_stages: int, options: CrossStitchOptions) -> tuple[int, ...]:
        return eligible_stages(options.stages, range(n_stages), self.name)

    def sample(self, trial: optuna.Trial, tasks: Sequence[str], n_stages: int, options: FamilyOptions) -> ArchConfig:
        return CrossStitchConfig(
            stages=sample_subset(trial, _STAGE_PREFIX, self._eligible(n_stages, options)),
            alpha_self=options.alpha_self.suggest(trial, "cross_stitch.alpha_self"),
            alpha_lr_mult=options.alpha_lr_mult.suggest(trial, "cross_stitch.alpha_lr_mult"),
        )

    def to_params(self, config: ArchConfig, tasks: Sequence[str], n_stages: int, options: FamilyOptions) -> dict[str, Any]:
        eligible = self._eligible(n_stages, options)
        if not set(config.stages) <= set(eligible):
            raise ValueError(f"units after stages {list(config.stages)} are outside the eligible stages {list(eligible)}")
        params = subset_params(_STAGE_PREFIX, config.stages, eligible)
        if not options.alpha_self.is_fixed:
            params["cross_stitch.alpha_self"] = _option_param(options.alpha_self, config.alpha_self, canonical_alpha, "alpha_self")
        if not options.alpha_lr_mult.is_fixed:
            params["cross_stitch.alpha_lr_mult"] = _option_param(
                options.alpha_lr_mult, config.alpha_lr_mult, canonical_mult, "alpha_lr_mult"
            )
        return params

    def enumerate(self, tasks: Sequence[str], n_stages: int, options: FamilyOptions) -> list[ArchConfig]:
        """Every unit placement, times the α choices when the options list some (ranges at their midpoint)."""

        def values(option: Param) -> tuple:
            return (option.default(),) if option.kind == "range" else option.grid_values()

        return [
            CrossStitchConfig(stages=stages, alpha_self=a, alpha_lr_mult=m)
            for stages, a, m in itertools.product(
                all_subsets(self._eligible(n_stages, options)), values(options.alpha_self), values(options.alpha_lr_mult)
            )
        ]


SPACE = CrossStitchSpace()  # found by name through registry.FAMILY_SPACES
