"""The space of trees: one Optuna choice per group that may split, and the whole space listed.

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
from functools import lru_cache
from typing import ClassVar, Iterator, Sequence

import optuna

from ..arch.tree import Group, Partition, TreeConfig, canonical_partition, partition_label, task_tuple
from ..spec.family_options import TreeOptions
from ._base import FamilySpace


def _param_name(stage: int, group: Group) -> str:
    return f"tree.stage{stage}.split[{','.join(group)}]"


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

    return tuple(sorted({canonical_partition(p) for p in gen(group)}, key=lambda p: (len(p), p)))


def _refinements(partition: Partition) -> Iterator[Partition]:
    """Every partition refining ``partition`` (the partition itself first)."""
    for choice in itertools.product(*(_set_partitions(g) for g in partition)):
        yield canonical_partition(g for p in choice for g in p)


def enumerate_trees(tasks: Sequence[str], n_stages: int, first_stage_shared: bool = True) -> list[TreeConfig]:
    """Every valid tree once, canonical; hard sharing first, the earliest full split last."""
    if n_stages < 1:
        raise ValueError(f"a tree needs n_stages >= 1, got {n_stages}")
    root: Partition = (task_tuple(tasks),)

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


class TreeSpace(FamilySpace):
    name: ClassVar[str] = "tree"

    def sample(self, trial: optuna.Trial, tasks: Sequence[str], n_stages: int, options: TreeOptions) -> TreeConfig:
        partition: Partition = (task_tuple(tasks),)
        stages = [partition] if options.first_stage_shared else []
        for i in range(len(stages), n_stages):
            groups: list[Group] = []
            for group in partition:
                if len(group) == 1:
                    groups.append(group)
                    continue
                choices = _set_partitions(group)
                labels = [partition_label(p) for p in choices]
                picked = trial.suggest_categorical(_param_name(i, group), labels)
                groups.extend(choices[labels.index(picked)])
            partition = canonical_partition(groups)
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
                        params[_param_name(i, group)] = partition_label(tuple(g for g in partition if set(g) <= set(group)))
            previous = partition
        return params

    def enumerate(self, tasks: Sequence[str], n_stages: int, options: TreeOptions) -> list[TreeConfig]:
        return enumerate_trees(tasks, n_stages, options.first_stage_shared)

    def space_size(self, tasks: Sequence[str], n_stages: int, options: TreeOptions) -> int:
        return count_trees(len(task_tuple(tasks)), n_stages, options.first_stage_shared)


SPACE = TreeSpace()  # found by name through registry.FAMILY_SPACES
