"""Which epoch's weights a trial keeps: the epoch its own ranking would pick.

Trials are ranked by Δm of their validation metrics against the single-task baseline
(README, "Ranking"), so ``fit`` selects on that, phase by phase:

- **several tasks, baseline known** (every searched trial): Δm of the phase's tasks'
  validation metrics against the baseline's (the metrics ``search.delta_m`` counts), the
  number the leaderboard ranks by.
- **several tasks, no baseline yet** (hard sharing among the references, or
  ``search.baselines: false``): the same formula against the phase's *first* epoch, i.e. the
  mean relative improvement of each task's primary metric since epoch 1 (a first-epoch
  value of 0 or below counts by its size, floored at ``1e-12``); epoch 1 scores 0.
- **one task** (a progressive column, a one-task problem): its primary metric.
- **independent columns** (the single-task networks: the model's ``separate_columns``
  says which weights serve which task alone): each task on its own primary metric, each
  column and head restored to its own best epoch. Its outputs depend on its own weights
  only, so the joint network then holds every task at its best epoch.

Higher scores win; a tie or a NaN score keeps the earlier epoch.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Mapping, Sequence

if TYPE_CHECKING:  # no torch at import: ``runs.rank`` reads ``relative_change`` without it
    from torch import Tensor, nn

    from .tasks import Task


def relative_change(
    metrics: Mapping[str, Mapping[str, float]],
    reference: Mapping[str, Mapping[str, float]],
    higher_is_better: Mapping[str, Mapping[str, bool]],
) -> float:
    """Δm's formula: each metric's relative change ``±(m − r) / |r|`` (minus where lower is
    better) averaged within its task, then ``100/T`` times the sum over the tasks of
    ``higher_is_better`` (task -> metric -> direction); ``runs.rank.delta_m`` checks its
    baseline, then calls this. A reference of 0 or below counts by its size, floored at 1e-12."""
    total = 0.0
    for task, directions in higher_is_better.items():
        task_total = 0.0
        for metric, higher in directions.items():
            base = metric_value(reference, task, metric)
            change = (metric_value(metrics, task, metric) - base) / max(abs(base), 1e-12)
            task_total += change if higher else -change
        total += task_total / len(directions)
    return 100.0 * total / len(higher_is_better)


def metric_value(values: Mapping[str, Mapping[str, float]], task: str, metric: str) -> float:
    """``values[task][metric]`` as a float, NaN when it is missing."""
    value = (values.get(task) or {}).get(metric)
    return math.nan if value is None else float(value)


def primary(tasks: Sequence[Task], val: Mapping[str, Mapping[str, float]]) -> dict[str, float]:
    """Each task's primary validation metric (NaN when not measured)."""
    return {t.name: float(val.get(t.name, {}).get(t.metric, math.nan)) for t in tasks}


@dataclass
class _Part:
    """Weights selected together: their state keys, the tasks that score them, their best so far."""

    keys: list[str]
    tasks: tuple[Task, ...]
    score: float = -math.inf
    epoch: int = 0
    state: dict[str, Tensor] | None = None
    since: int = 0  # epochs since this part last improved


class EpochSelection:
    """One phase's selection: after each epoch ``update``; at the end ``restore`` the chosen weights."""

    def __init__(self, model: nn.Module, tasks: Sequence[Task], baseline: Mapping[str, Mapping[str, float]] | None,
                 columns: Mapping[str, Sequence[str]] | None):
        # task -> metric -> the baseline's value, for the metrics Δm counts (search.delta_m)
        self.baseline = None if baseline is None else {t: dict(m) for t, m in baseline.items()}
        self.reference: dict[str, dict[str, float]] | None = None  # the phase's first epoch, when no baseline
        keys = list(model.state_dict())
        if columns is not None and len(tasks) > 1:
            self.parts = [_Part([k for k in keys if k.startswith(tuple(columns[t.name]))], (t,)) for t in tasks]
            outside = sorted(set(keys) - {k for part in self.parts for k in part.keys})
            if outside:
                raise ValueError(f"separate_columns must cover the whole state, but {outside} belong to no task's column")
        else:
            self.parts = [_Part(keys, tuple(tasks))]

    def score(self, tasks: Sequence[Task], val: Mapping[str, Mapping[str, float]]) -> float:
        """Higher is better: see the module docstring."""
        if len(tasks) == 1:
            (task,) = tasks
            value = primary(tasks, val)[task.name]
            return value if task.higher_is_better else -value
        directions = {t.name: self._counted(t) for t in tasks}
        metrics = {t.name: {m: metric_value(val, t.name, m) for m in directions[t.name]} for t in tasks}
        if self.baseline is None:
            self.reference = self.reference or metrics
        return relative_change(metrics, self.baseline or self.reference, directions)

    def _counted(self, task: Task) -> dict[str, bool]:
        """The metrics of ``task`` the score counts, with their directions: those the baseline
        holds (the engine gives Δm's terms), the primary one when there is no baseline."""
        names = [m for m in task.metrics if m in self.baseline.get(task.name, {})] if self.baseline else []
        return {m: task.metric_directions[m] for m in names} or {task.metric: task.higher_is_better}

    def update(self, model: nn.Module, epoch: int, val: Mapping[str, Mapping[str, float]]) -> bool:
        """Score the epoch the model holds; keep the weights of every part it improves. True when one improved."""
        improved = False
        state = None
        for part in self.parts:
            score = self.score(part.tasks, val)
            if part.state is None or score > part.score:
                state = state if state is not None else model.state_dict()
                part.score, part.epoch, part.since = score, epoch, 0
                part.state = {k: state[k].detach().clone() for k in part.keys}
                improved = True
            else:
                part.since += 1
        return improved

    @property
    def since_best(self) -> int:
        """Epochs since any part last improved (``patience`` counts these)."""
        return min(part.since for part in self.parts)

    @property
    def epochs(self) -> dict[str, int]:
        """Task -> the epoch whose weights serve it."""
        return {t.name: part.epoch for part in self.parts for t in part.tasks}

    def restore(self, model: nn.Module) -> None:
        """Put every part's selected weights back into the model."""
        model.load_state_dict({k: v for part in self.parts for k, v in part.state.items()})
