"""A spec made concrete: the loaded data, the resolved tasks and the measured backbone.

This is the one place where spec, data and backbone meet, so trials, ``validate``,
export and reload all see the same tasks (types, output sizes, metric directions).
"""

from __future__ import annotations

from dataclasses import dataclass

from ..arch.backbones import Backbone, make_backbone
from ..arch.heads import check_task_head
from ..data import Dataset, load_data
from ..errors import SpecError
from ..spec.model import Spec
from .tasks import DEFAULT_METRIC, METRICS, Task


@dataclass(frozen=True)
class Problem:
    spec: Spec
    data: Dataset
    tasks: tuple[Task, ...]
    backbone: Backbone

    @property
    def task_names(self) -> list[str]:
        return [t.name for t in self.tasks]

    @property
    def higher_is_better(self) -> dict[str, bool]:
        return {t.name: t.higher_is_better for t in self.tasks}


def resolve_tasks(spec: Spec, data: Dataset) -> tuple[Task, ...]:
    """Tasks from the spec, typed and sized by the labels the data carries."""
    tasks = []
    for name, ts in spec.tasks.items():
        label = ts.data_label(name)
        if ts.reduce is not None and data.manifest is None:
            raise SpecError(f"tasks.{name}.reduce", f"reduces a folder source's per-pixel field; data {data.name!r} is not a folder")
        if label not in data.labels:
            known = ", ".join(sorted([*data.labels, *data.unused_labels]))
            raise SpecError(f"tasks.{name}.label", f"data {data.name!r} has no label {label!r} (labels: {known})")
        info = data.labels[label]
        kind = ts.type or info.kind
        n_outputs = info.n_outputs
        if kind != info.kind:
            if kind == "multiclass" and info.kind == "binary":
                n_outputs = 2
            elif kind == "binary_dense" and info.kind == "segmentation" and info.n_outputs == 2:
                n_outputs = 1  # a two-class mask (0, 1, -1 unlabelled) is a binary per-pixel label
            else:
                raise SpecError(f"tasks.{name}.type", f"label {label!r} is {info.kind}; type {kind!r} does not fit it")
        metric = ts.metric or DEFAULT_METRIC[kind]
        for m in (metric, *ts.extra_metrics):
            if kind not in METRICS[m].task_types:
                fits = [n for n, x in METRICS.items() if kind in x.task_types]
                raise SpecError(f"tasks.{name}.metric", f"metric {m!r} does not fit a {kind} task (use one of: {', '.join(fits)})")
        tasks.append(
            Task(
                name=name,
                label=label,
                type=kind,
                n_outputs=n_outputs,
                metric=metric,
                extra_metrics=tuple(ts.extra_metrics),
                class_names=info.class_names if kind != "regression" else None,
                head=ts.head.name if ts.head is not None else None,
                head_options=dict(ts.head.options) if ts.head is not None else {},
            )
        )
    return tuple(tasks)


def load_problem(spec: Spec) -> Problem:
    """Load the data and measure the backbone once (both can fail with a clear error)."""
    data = load_data(spec.data, seed=spec.seed, labels={ts.data_label(name): name for name, ts in spec.tasks.items()})
    tasks = resolve_tasks(spec, data)
    backbone = make_backbone(spec.backbone.name, data.input_shape, spec.backbone.options, weights=spec.backbone.weights)
    for task in tasks:
        check_task_head(task, backbone)
    return Problem(spec=spec, data=data, tasks=tasks, backbone=backbone)


def user_code_named(spec: Spec) -> dict[str, str]:
    """The spec's entries that name a user ``module:function`` (neither built in nor a data
    file): ``load_problem`` imports and calls each, so it runs that code."""
    from ..arch.backbones import BACKBONES
    from ..data import BUILTIN_SOURCES
    from ..spec.model import is_file_source, is_module_source

    named = {}
    source = spec.data.source
    if isinstance(source, str) and source not in BUILTIN_SOURCES and not is_file_source(source) and is_module_source(source):
        named["data.source"] = source
    if ":" in spec.backbone.name and spec.backbone.name not in BACKBONES:
        named["backbone.name"] = spec.backbone.name
    if spec.plugins:
        named["plugins"] = ", ".join(spec.plugins)
    return named
