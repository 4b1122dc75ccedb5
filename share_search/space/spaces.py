"""The search space: which family, which architecture in it, which training values.

``sample_trial`` is the define-by-run function Optuna runs for every trial; replayed on
``optuna.trial.FixedTrial`` with a trial's stored parameters it decodes that trial, so the
trial, the export and the reload share one code path. Reference architectures (the
single-task networks that define Δm, and hard sharing) are queued first with a ``role``;
one outside the sampled space carries its recipe instead of parameters.
"""

from __future__ import annotations

import itertools
import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Mapping

import optuna

from ..arch import ArchConfig, config_from_dict
from ..arch.tree import TreeConfig
from ..errors import SpecError
from ..spec.model import Spec, TrainConfig
from ..spec.registry import FAMILY_SPACES
from ..spec.roles import ROLE_HARD_SHARING, ROLE_SINGLE_TASK

if TYPE_CHECKING:  # a type in signatures only
    from ..train.problem import Problem

FAMILY_PARAM = "family"


@dataclass(frozen=True)
class SpaceInfo:
    """What the space depends on (no data), small enough to travel with the searcher."""

    spec: Spec
    task_names: tuple[str, ...]
    n_stages: int


def space_info(problem: Problem | SpaceInfo) -> SpaceInfo:
    if isinstance(problem, SpaceInfo):
        return problem
    return SpaceInfo(problem.spec, tuple(problem.task_names), problem.backbone.n_stages)


@dataclass(frozen=True)
class TrialPlan:
    """Everything one trial needs to build and train its network."""

    arch: ArchConfig
    train: TrainConfig
    role: str | None = None


def train_param_name(name: str) -> str:
    return f"train.{name}"


def train_config(spec: Spec, values: Mapping[str, Any]) -> TrainConfig:
    """A concrete TrainConfig from sampled values plus the spec's fixed settings."""
    return spec.train.concrete(values, spec.seed)


def default_train_values(spec: Spec) -> dict[str, Any]:
    """The training values references use: fixed values, first choices, range midpoints."""
    return {name: p.default() for name, p in spec.train.params().items()}


def sample_trial(trial, problem: Problem | SpaceInfo, role: str | None = None, fixed_arch: ArchConfig | None = None) -> TrialPlan:
    """Sample (or replay) one trial: family, architecture, training values."""
    info = space_info(problem)
    spec = info.spec
    if fixed_arch is not None:
        return TrialPlan(fixed_arch, train_config(spec, default_train_values(spec)), role)
    names = list(spec.families)
    family = trial.suggest_categorical(FAMILY_PARAM, names)
    arch = FAMILY_SPACES[family].sample(trial, list(info.task_names), info.n_stages, spec.families[family])
    values = {name: p.suggest(trial, train_param_name(name)) for name, p in spec.train.params().items()}
    return TrialPlan(arch, train_config(spec, values), role)


class SpaceFunction:
    """The callable the searcher runs on each asked trial; what it returns is the trial's Ray config.

    A module-level class (not a closure) so Tune can pickle the searcher with it.
    """

    def __init__(self, problem: Problem | SpaceInfo):
        self.info = space_info(problem)

    def __call__(self, trial) -> dict[str, Any]:
        attrs = trial.user_attrs
        fixed = attrs.get("fixed_arch")
        plan = sample_trial(trial, self.info, attrs.get("role"), config_from_dict(json.loads(fixed)) if fixed else None)
        return {"plan": plan_to_dict(plan), "optuna_trial": trial.number}


def plan_to_dict(plan: TrialPlan) -> dict[str, Any]:
    return {"arch": plan.arch.to_dict(), "train": plan.train.__dict__.copy(), "role": plan.role}


def plan_from_dict(data: Mapping[str, Any]) -> TrialPlan:
    return TrialPlan(config_from_dict(data["arch"]), TrainConfig(**data["train"]), data.get("role"))


def decode(params: Mapping[str, Any], problem: Problem, user_attrs: Mapping[str, Any] | None = None) -> TrialPlan:
    """A stored trial's parameters (and role attributes) back to its plan."""
    attrs = user_attrs or {}
    fixed = attrs.get("fixed_arch")
    return sample_trial(
        optuna.trial.FixedTrial(dict(params)),
        problem,
        attrs.get("role"),
        config_from_dict(json.loads(fixed)) if fixed else None,
    )


def arch_params(arch: ArchConfig, problem: Problem) -> dict[str, Any] | None:
    """Parameters that make ``sample_trial`` produce ``arch``; None when it is outside the space."""
    spec = problem.spec
    if arch.family not in spec.families:
        return None
    family = FAMILY_SPACES[arch.family]
    options = spec.families[arch.family]
    try:
        params = family.to_params(arch, problem.task_names, problem.backbone.n_stages, options)
        if family.decode(params, problem.task_names, problem.backbone.n_stages, options) != arch:
            return None
    except (ValueError, KeyError):
        return None
    return {FAMILY_PARAM: arch.family, **params}


def reference_archs(problem: Problem) -> list[tuple[str, ArchConfig]]:
    """The single-task networks (the Δm baseline) and hard sharing, in that order."""
    names, n = problem.task_names, problem.backbone.n_stages
    return [(ROLE_SINGLE_TASK, TreeConfig.independent(names, n)), (ROLE_HARD_SHARING, TreeConfig.hard_sharing(names, n))]


def grid_points(problem: Problem) -> list[dict[str, Any]]:
    """Every architecture of every family times every training choice, once each.

    Continuous family options take their defaults; a training *range* cannot be walked,
    so ``grid`` asks for fixed values or choice lists (checked by ``check_grid``).
    """
    spec = problem.spec
    train_choices = {k: p.grid_values() for k, p in spec.train.searched().items()}
    train_combos = [dict(zip(train_choices, combo)) for combo in itertools.product(*train_choices.values())] or [{}]
    points = []
    for name, options in spec.families.items():
        family = FAMILY_SPACES[name]
        for arch in family.enumerate(problem.task_names, problem.backbone.n_stages, options):
            base = {FAMILY_PARAM: name, **family.to_params(arch, problem.task_names, problem.backbone.n_stages, options)}
            for combo in train_combos:
                points.append({**base, **{train_param_name(k): v for k, v in combo.items()}})
    return points


def grid_problems(spec: Spec) -> list[str]:
    """Why a spec cannot be walked as a grid (empty when it can)."""
    return [
        f"train.{k}: the grid sampler needs a fixed value or a choice list, got a {p.describe()}"
        for k, p in spec.train.searched().items()
        if p.kind == "range"
    ]


def check_grid(spec: Spec) -> None:
    """Refuse a grid over a training range before any data loads (``validate`` and ``run`` alike)."""
    problems = grid_problems(spec) if spec.search.sampler == "grid" else []
    if problems:
        raise SpecError("", problems[0])  # the problem names its key: "train.lr: ..."


def space_sizes(problem: Problem) -> dict[str, int]:
    """Distinct architectures per family (discrete part of each space)."""
    spec = problem.spec
    return {
        name: FAMILY_SPACES[name].space_size(problem.task_names, problem.backbone.n_stages, options)
        for name, options in spec.families.items()
    }
