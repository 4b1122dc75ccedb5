"""A searched, non-empty subset of a backbone's stages (where cross-stitch units or
progressive laterals go), sampled as one readable boolean per eligible stage.

An empty subset would be independent columns, i.e. the single-task baseline every study
already trains, so it is left out: when no earlier eligible stage is chosen, the last one
is implied and gets no Optuna parameter. Every boolean keeps the same distribution
``[False, True]`` in every trial, as Optuna's samplers require. The price is a mild bias:
a uniform sampler picks the subset {last} twice as often as any other subset.
"""

from __future__ import annotations

import itertools
from typing import Any, Optional, Sequence

import optuna

from ..errors import SpecError


def eligible_stages(chosen: Optional[Sequence[int]], allowed: range, family: str) -> tuple[int, ...]:
    """The stages a family may use: ``chosen`` from the options (checked) or all of ``allowed``."""
    if chosen is None:
        stages = tuple(allowed)
    else:
        stages = tuple(sorted(set(chosen)))
        bad = [s for s in stages if s not in allowed]
        if bad or not stages:
            raise SpecError(
                f"families.{family}.stages",
                f"stages must be a non-empty list within {allowed.start}..{allowed.stop - 1} "
                f"for this backbone, got {list(chosen)}",
            )
    if not stages:
        raise SpecError("backbone", f"{family} needs a backbone with at least {allowed.start + 1} stages")
    return stages


def sample_subset(trial: optuna.Trial, prefix: str, eligible: Sequence[int]) -> tuple[int, ...]:
    """One ``<prefix><stage>`` boolean per eligible stage but the last, which is implied if none is chosen."""
    *earlier, last = eligible
    chosen = [s for s in earlier if trial.suggest_categorical(f"{prefix}{s}", [False, True])]
    if not chosen or trial.suggest_categorical(f"{prefix}{last}", [False, True]):
        chosen.append(last)
    return tuple(chosen)


def subset_params(prefix: str, subset: Sequence[int], eligible: Sequence[int]) -> dict[str, Any]:
    """The booleans ``sample_subset`` reads to reproduce ``subset``."""
    *earlier, last = eligible
    params: dict[str, Any] = {f"{prefix}{s}": s in subset for s in earlier}
    if any(params.values()):
        params[f"{prefix}{last}"] = last in subset
    return params


def all_subsets(eligible: Sequence[int]) -> list[tuple[int, ...]]:
    """Every non-empty subset of ``eligible``, smallest first."""
    return [c for n in range(1, len(eligible) + 1) for c in itertools.combinations(eligible, n)]
