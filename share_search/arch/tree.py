"""The ``tree`` family: where along the backbone tasks branch apart.

A tree gives, for every backbone stage, a partition of the tasks; tasks in one group share
that stage's module, and each partition refines the one before, so tasks that split never
rejoin (Vandenhende et al. 2020, "Branched Multi-Task Networks"; Guo et al. 2020,
"Learning to Branch"). One group at every stage is hard parameter sharing; singletons from
stage 0 are the independent single-task networks Standley et al. 2020 and the Δm baseline
compare against.

Canonical form: tasks inside a group and groups inside a stage are sorted by task *name*
(not spec order), so a config, its Optuna parameter names and its summary do not change
when the spec lists the tasks in another order, and two configs that build the same
network compare equal.

Optuna parameters (define-by-run): from stage 1 on (stage 0 too when the first stage is
not forced shared), every group of two or more tasks of the previous stage gets one
categorical parameter naming the stage and the group, whose choices are all set
partitions of that group, coarsest first::

    tree.stage2.split[left,right]  in  ("[left right]", "[left][right]")

The group is part of the name, so the choices of a name never change and every valid tree
is reachable; a group that stays whole adds no new names below it.
"""

from __future__ import annotations

import itertools
import math
import re
from functools import lru_cache
from typing import TYPE_CHECKING, ClassVar, Iterable, Iterator, Sequence

import optuna
from pydantic import field_validator
from torch import nn

from ..spec.family_options import TreeOptions
from ._base import ArchConfig, Family, FamilyOptions, MultiTaskModel
from .backbones import Backbone, make_head

if TYPE_CHECKING:  # a type in signatures only: arch does not depend on train at run time
    from ..train.tasks import Task

Group = tuple[str, ...]
Partition = tuple[Group, ...]

_TASK_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def _canonical(groups: Iterable[Iterable[str]]) -> Partition:
    return tuple(sorted(tuple(sorted(g)) for g in groups))


def _label(partition: Partition) -> str:
    """``[left right][sum]``: the readable form used in choices and summaries."""
    return "".join("[" + " ".join(g) + "]" for g in partition)


def _param_name(stage: int, group: Group) -> str:
    return f"tree.stage{stage}.split[{','.join(group)}]"


def _node_key(group: Group) -> str:
    """Module name of a node in ``state_dict`` (``stages.1.left+right.0.weight``)."""
    return "+".join(group)


def _task_tuple(tasks: Sequence[str]) -> Group:
    if not tasks:
        raise ValueError("a tree needs at least one task, got none")
    if len(set(tasks)) != len(tasks):
        raise ValueError(f"task names must be unique, got {list(tasks)}")
    return tuple(sorted(tasks))


@lru_cache(maxsize=None)
def _set_partitions(group: Group) -> tuple[Partition, ...]:
    """Every set partition of ``group``, canonical, coarsest first (unsplit first, singletons last)."""

    def gen(items: Group) -> Iterator[list[Group]]:
        if not items:
            yield []
            return
        first, rest = items[0], items[1:]
        for p in gen(rest):
            yield [(first,), *p]
            for i in range(len(p)):
                yield [*p[:i], (first, *p[i]), *p[i + 1 :]]

    return tuple(sorted({_canonical(p) for p in gen(group)}, key=lambda p: (len(p), p)))


def _refinements(partition: Partition) -> Iterator[Partition]:
    """Every partition refining ``partition`` (the partition itself first)."""
    for choice in itertools.product(*(_set_partitions(g) for g in partition)):
        yield _canonical(g for p in choice for g in p)


class TreeConfig(ArchConfig):
    """``stages[i]`` partitions the tasks into the groups that share stage ``i``.

    Validated (every task exactly once per stage, each stage refining the one before) and
    stored canonical, so ``TreeConfig(stages=...)`` accepts groups in any order.
    """

    family: ClassVar[str] = "tree"
    stages: tuple[Partition, ...]

    @field_validator("stages")
    @classmethod
    def _valid_and_canonical(cls, stages: tuple[Partition, ...]) -> tuple[Partition, ...]:
        if not stages:
            raise ValueError("a tree needs at least one stage, got none")
        out: list[Partition] = []
        tasks: set[str] = set()
        for i, groups in enumerate(stages):
            names = [t for g in groups for t in g]
            if any(not g for g in groups):
                raise ValueError(f"stage {i}: groups must be non-empty, got {_label(tuple(groups))}")
            bad = [t for t in names if not _TASK_NAME.fullmatch(t)]
            if bad:
                raise ValueError(f"stage {i}: task names are identifiers (letters, digits, '_'), got {bad}")
            repeated = sorted({t for t in names if names.count(t) > 1})
            if repeated:
                raise ValueError(f"stage {i}: every task must appear once, but {repeated} appear more than once")
            partition = _canonical(groups)
            if i == 0:
                tasks = set(names)
            elif set(names) != tasks:
                lacks, adds = sorted(tasks - set(names)), sorted(set(names) - tasks)
                raise ValueError(
                    f"stage {i}: every stage must hold the tasks of stage 0, but got "
                    + ", ".join(([f"{lacks} missing"] if lacks else []) + ([f"{adds} not in stage 0"] if adds else []))
                )
            else:
                for g in partition:
                    if not any(set(g) <= set(parent) for parent in out[-1]):
                        raise ValueError(
                            f"stage {i}: tasks that split never rejoin, but group {_label((g,))} "
                            f"joins tasks that stage {i - 1} keeps apart ({_label(out[-1])})"
                        )
            out.append(partition)
        return tuple(out)

    @classmethod
    def hard_sharing(cls, tasks: Sequence[str], n_stages: int) -> "TreeConfig":
        """All tasks share every stage; only the heads are task-specific."""
        return cls(stages=((_task_tuple(tasks),),) * n_stages)

    @classmethod
    def independent(cls, tasks: Sequence[str], n_stages: int) -> "TreeConfig":
        """One network per task (the single-task baselines of Δm), buildable whatever the options."""
        return cls(stages=(tuple((t,) for t in _task_tuple(tasks)),) * n_stages)

    @property
    def tasks(self) -> Group:
        """The task names, sorted."""
        return tuple(sorted(t for g in self.stages[0] for t in g))

    @property
    def n_stages(self) -> int:
        return len(self.stages)

    def summary(self) -> str:
        """Full task names, groups in brackets, stages joined by ``>``, repeats as ``xN``.

        e.g. ``tree: [left right sum]x2 > [left right][sum] > [left][right][sum]``.
        """
        runs = ((_label(p), len(list(same))) for p, same in itertools.groupby(self.stages))
        return "tree: " + " > ".join(label + (f"x{n}" if n > 1 else "") for label, n in runs)


def enumerate_trees(tasks: Sequence[str], n_stages: int, first_stage_shared: bool = True) -> list[TreeConfig]:
    """Every valid tree once, canonical; hard sharing first, the earliest full split last."""
    if n_stages < 1:
        raise ValueError(f"a tree needs n_stages >= 1, got {n_stages}")
    root: Partition = (_task_tuple(tasks),)

    def extend(prefix: tuple[Partition, ...], parent: Partition) -> Iterator[tuple[Partition, ...]]:
        if len(prefix) == n_stages:
            yield prefix
            return
        for partition in _refinements(parent):
            yield from extend(prefix + (partition,), partition)

    chains = extend((root,), root) if first_stage_shared else extend((), root)
    return [TreeConfig(stages=c) for c in chains]


def count_trees(n_tasks: int, n_stages: int, first_stage_shared: bool = True) -> int:
    """``len(enumerate_trees(...))`` without enumerating (the space grows fast with tasks).

    ``trees(n, k)``, the trees below one group of ``n`` tasks with ``k`` stages left, sums
    over the block holding a fixed task (size ``s``, ``C(n-1, s-1)`` ways) times the trees
    below that block and below the remaining ``n - s`` tasks.
    """
    if n_tasks < 1 or n_stages < 1:
        raise ValueError(f"a tree needs n_tasks >= 1 and n_stages >= 1, got ({n_tasks}, {n_stages})")

    @lru_cache(maxsize=None)
    def trees(n: int, k: int) -> int:
        return 1 if k == 0 else forests(n, k)

    @lru_cache(maxsize=None)
    def forests(m: int, k: int) -> int:  # partitions of m tasks, each block with k-1 stages left
        if m == 0:
            return 1
        return sum(math.comb(m - 1, s - 1) * trees(s, k - 1) * forests(m - s, k) for s in range(1, m + 1))

    return trees(n_tasks, n_stages - 1 if first_stage_shared else n_stages)


class TreeModel(MultiTaskModel):
    """One backbone-stage module per tree node; each node runs once per batch and feeds its children.

    Modules are ``stages.<i>.<task>+<task>`` and ``heads.<task>`` in ``state_dict``.
    """

    def __init__(self, config: TreeConfig, backbone: Backbone, tasks: Sequence[Task]):
        super().__init__(config, [t.name for t in tasks])
        # A node at stage i needs its own fresh copy of stage i; the last stage has the most nodes.
        copies = [backbone.build_stages() for _ in config.stages[-1]]
        self.stages = nn.ModuleList(
            nn.ModuleDict({_node_key(g): copies[j][i] for j, g in enumerate(partition)})
            for i, partition in enumerate(config.stages)
        )
        self.heads = nn.ModuleDict({t.name: make_head(backbone.output_shape, t.n_outputs) for t in tasks})
        self._plan: list[list[tuple[str, str]]] = []  # per stage: (node, parent node); "" is the input
        parents: Partition = (config.tasks,)
        for i, partition in enumerate(config.stages):
            parent_of = {t: ("" if i == 0 else _node_key(p)) for p in parents for t in p}
            self._plan.append([(_node_key(g), parent_of[g[0]]) for g in partition])
            parents = partition
        self._leaf = {t: _node_key(g) for g in config.stages[-1] for t in g}

    def forward(self, x):
        features = {"": x}
        for stage, plan in zip(self.stages, self._plan):
            features = {node: stage[node](features[parent]) for node, parent in plan}
        return {t: self.heads[t](features[self._leaf[t]]) for t in self.task_names}

    def shared_parameters(self) -> list[nn.Parameter]:
        """The deepest node all tasks share (GradNorm's "last shared layer", Chen et al. 2018).

        A node shared by only some tasks would give the others a zero gradient norm, so
        when no node is shared by all tasks every parameter is returned instead.
        """
        shared = [i for i, p in enumerate(self.config.stages) if len(p) == 1]
        if not shared:
            return super().shared_parameters()
        node = self.stages[shared[-1]][_node_key(self.config.tasks)]
        return [p for p in node.parameters() if p.requires_grad]


class TreeFamily(Family):
    name: ClassVar[str] = "tree"
    Config: ClassVar[type[ArchConfig]] = TreeConfig
    Options: ClassVar[type[FamilyOptions]] = TreeOptions

    def sample(self, trial: optuna.Trial, tasks: Sequence[str], n_stages: int, options: TreeOptions) -> TreeConfig:
        partition: Partition = (_task_tuple(tasks),)
        stages = [partition] if options.first_stage_shared else []
        for i in range(len(stages), n_stages):
            groups: list[Group] = []
            for group in partition:
                if len(group) == 1:
                    groups.append(group)
                    continue
                choices = _set_partitions(group)
                labels = [_label(p) for p in choices]
                picked = trial.suggest_categorical(_param_name(i, group), labels)
                groups.extend(choices[labels.index(picked)])
            partition = _canonical(groups)
            stages.append(partition)
        return TreeConfig(stages=tuple(stages))

    def to_params(self, config: TreeConfig, tasks: Sequence[str], n_stages: int, options: TreeOptions) -> dict[str, str]:
        if set(config.tasks) != set(tasks) or config.n_stages != n_stages:
            raise ValueError(
                f"the config must hold the space's tasks and stages, but got tasks {list(config.tasks)} "
                f"and {config.n_stages} stages for tasks {sorted(tasks)} and {n_stages} stages"
            )
        if options.first_stage_shared and len(config.stages[0]) > 1:
            raise ValueError(f"first_stage_shared=True keeps stage 0 whole, but the config splits it: {config.summary()}")
        params = {}
        previous: Partition = (config.tasks,)
        for i, partition in enumerate(config.stages):
            if i > 0 or not options.first_stage_shared:
                for group in previous:
                    if len(group) > 1:
                        params[_param_name(i, group)] = _label(tuple(g for g in partition if set(g) <= set(group)))
            previous = partition
        return params

    def enumerate(self, tasks: Sequence[str], n_stages: int, options: TreeOptions) -> list[TreeConfig]:
        return enumerate_trees(tasks, n_stages, options.first_stage_shared)

    def space_size(self, tasks: Sequence[str], n_stages: int, options: TreeOptions) -> int:
        return count_trees(len(_task_tuple(tasks)), n_stages, options.first_stage_shared)

    def build(self, config: TreeConfig, backbone: Backbone, tasks: Sequence[Task]) -> TreeModel:
        names = [t.name for t in tasks]
        if sorted(names) != list(config.tasks) or config.n_stages != backbone.n_stages:
            raise ValueError(
                f"the tree must match the tasks and the backbone, but it has tasks {list(config.tasks)} and "
                f"{config.n_stages} stages, while the tasks are {names} and {backbone.name!r} has {backbone.n_stages} stages"
            )
        return TreeModel(config, backbone, tasks)

    fixed_depth: ClassVar[bool] = True

    def stages_used(self, config: TreeConfig) -> int:
        return config.n_stages

    def layout(self, config, details, n_stages, tasks):
        from .layout import tree_layout

        return tree_layout(config, details, n_stages, tasks)


FAMILY = TreeFamily()  # found by name through registry.FAMILIES
