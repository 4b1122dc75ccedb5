"""The space of progressive networks: the order the columns train in, where laterals go, their kind.

The order is one categorical over every permutation (at most ``MAX_SEARCHED_TASKS`` tasks),
or fixed by the options; lateral stages are a searched non-empty subset (``space._stages``).
"""

from __future__ import annotations

import itertools
import math
from typing import Any, ClassVar, Sequence

import optuna

from ..arch import ArchConfig
from ..arch.progressive import ProgressiveConfig
from ..errors import SpecError
from ..spec.family_options import FamilyOptions, ProgressiveOptions
from ._base import FamilySpace
from ._stages import all_subsets, eligible_stages, sample_subset, subset_params

MAX_SEARCHED_TASKS = 6  # 720 orders in one categorical; 7 tasks would store 5,040 choices per trial
_STAGE_PREFIX = "progressive.lateral_stage"
_ORDER_SEPARATOR = " > "


def _label(order: Sequence[str]) -> str:
    return _ORDER_SEPARATOR.join(order)


class ProgressiveSpace(FamilySpace):
    name: ClassVar[str] = "progressive"

    def _orders(self, tasks: Sequence[str], options: ProgressiveOptions) -> list[tuple[str, ...]]:
        if options.order is not None:
            if sorted(options.order) != sorted(tasks):
                raise SpecError(
                    "families.progressive.order",
                    f"must list every task once ({', '.join(tasks)}), got {options.order}",
                )
            return [tuple(options.order)]
        if len(tasks) > MAX_SEARCHED_TASKS:
            raise SpecError(
                "families.progressive.order",
                f"searching the order of {len(tasks)} tasks means {math.factorial(len(tasks)):,} orders in one "
                f"Optuna choice (at most {MAX_SEARCHED_TASKS} tasks); give a fixed order",
            )
        return list(itertools.permutations(tasks))

    def _eligible(self, n_stages: int, options: ProgressiveOptions) -> tuple[int, ...]:
        return eligible_stages(options.stages, range(1, n_stages), self.name)

    def sample(self, trial: optuna.Trial, tasks: Sequence[str], n_stages: int, options: FamilyOptions) -> ArchConfig:
        orders = {_label(o): o for o in self._orders(tasks, options)}
        label = next(iter(orders)) if len(orders) == 1 else trial.suggest_categorical("progressive.order", list(orders))
        return ProgressiveConfig(
            order=orders[label],
            lateral_stages=sample_subset(trial, _STAGE_PREFIX, self._eligible(n_stages, options)),
            lateral=options.lateral.suggest(trial, "progressive.lateral"),
        )

    def to_params(self, config: ArchConfig, tasks: Sequence[str], n_stages: int, options: FamilyOptions) -> dict[str, Any]:
        orders = self._orders(tasks, options)
        eligible = self._eligible(n_stages, options)
        if config.order not in orders or not set(config.lateral_stages) <= set(eligible):
            raise ValueError(
                f"{config.summary()!r} is outside this space (orders: {len(orders)}, lateral stages: {list(eligible)})"
            )
        params: dict[str, Any] = {"progressive.order": _label(config.order)} if len(orders) > 1 else {}
        params.update(subset_params(_STAGE_PREFIX, config.lateral_stages, eligible))
        if not options.lateral.is_fixed:
            params["progressive.lateral"] = config.lateral
        return params

    def enumerate(self, tasks: Sequence[str], n_stages: int, options: FamilyOptions) -> list[ArchConfig]:
        return [
            ProgressiveConfig(order=order, lateral_stages=stages, lateral=lateral)
            for order, stages, lateral in itertools.product(
                self._orders(tasks, options),
                all_subsets(self._eligible(n_stages, options)),
                options.lateral.grid_values(),
            )
        ]


SPACE = ProgressiveSpace()  # found by name through registry.FAMILY_SPACES
