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
network compare equal. The space of trees (its Optuna parameters, enumeration and
count) is ``space.tree``.
"""

from __future__ import annotations

import itertools
import re
from typing import TYPE_CHECKING, ClassVar, Iterable, Sequence

from pydantic import field_validator
from torch import nn

from ..spec.family_options import TreeOptions
from ._base import ArchConfig, Family, FamilyOptions, MultiTaskModel
from .backbones import Backbone
from .heads import task_head

if TYPE_CHECKING:  # a type in signatures only: arch does not depend on train at run time
    from ..train.tasks import Task

Group = tuple[str, ...]
Partition = tuple[Group, ...]

_TASK_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def canonical_partition(groups: Iterable[Iterable[str]]) -> Partition:
    return tuple(sorted(tuple(sorted(g)) for g in groups))


def partition_label(partition: Partition) -> str:
    """``[left right][sum]``: the readable form used in choices and summaries."""
    return "".join("[" + " ".join(g) + "]" for g in partition)


def _node_key(group: Group) -> str:
    """Module name of a node in ``state_dict`` (``stages.1.left+right.0.weight``)."""
    return "+".join(group)


def task_tuple(tasks: Sequence[str]) -> Group:
    if not tasks:
        raise ValueError("a tree needs at least one task, got none")
    if len(set(tasks)) != len(tasks):
        raise ValueError(f"task names must be unique, got {list(tasks)}")
    return tuple(sorted(tasks))


class TreeConfig(ArchConfig):
    """``stages[i]`` partitions the tasks into the groups that share stage ``i``.

    Validated (every task exactly once per stage, each stage refining the one before) and
    stored canonical, so ``TreeConfig(stages=...)`` accepts groups in any order.
    """

    family: ClassVar[str] = "tree"
    stages: tuple[Partition, ...]

    @field_validator("stages")
    @classmethod
    def _valid_andcanonical_partition(cls, stages: tuple[Partition, ...]) -> tuple[Partition, ...]:
        if not stages:
            raise ValueError("a tree needs at least one stage, got none")
        out: list[Partition] = []
        tasks: set[str] = set()
        for i, groups in enumerate(stages):
            names = [t for g in groups for t in g]
            if any(not g for g in groups):
                raise ValueError(f"stage {i}: groups must be non-empty, got {partition_label(tuple(groups))}")
            bad = [t for t in names if not _TASK_NAME.fullmatch(t)]
            if bad:
                raise ValueError(f"stage {i}: task names are identifiers (letters, digits, '_'), got {bad}")
            repeated = sorted({t for t in names if names.count(t) > 1})
            if repeated:
                raise ValueError(f"stage {i}: every task must appear once, but {repeated} appear more than once")
            partition = canonical_partition(groups)
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
                            f"stage {i}: tasks that split never rejoin, but group {partition_label((g,))} "
                            f"joins tasks that stage {i - 1} keeps apart ({partition_label(out[-1])})"
                        )
            out.append(partition)
        return tuple(out)

    @classmethod
    def hard_sharing(cls, tasks: Sequence[str], n_stages: int) -> "TreeConfig":
        """All tasks share every stage; only the heads are task-specific."""
        return cls(stages=((task_tuple(tasks),),) * n_stages)

    @classmethod
    def independent(cls, tasks: Sequence[str], n_stages: int) -> "TreeConfig":
        """One network per task (the single-task baselines of Δm), buildable whatever the options."""
        return cls(stages=(tuple((t,) for t in task_tuple(tasks)),) * n_stages)

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
        runs = ((partition_label(p), len(list(same))) for p, same in itertools.groupby(self.stages))
        return "tree: " + " > ".join(label + (f"x{n}" if n > 1 else "") for label, n in runs)


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
        self.heads = nn.ModuleDict({t.name: task_head(t, backbone) for t in tasks})
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

    def encoder_parameters(self) -> list[nn.Parameter]:
        return list(self.stages.parameters())

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
