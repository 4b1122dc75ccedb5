"""The layout of a drawn architecture, as plain data: boxes on a grid, and links.

``layout(arch, details, n_stages)`` places boxes (the input, one box per module of each
stage, one head per task) on a grid of task columns and rows (row 0 the input, row i+1
backbone stage i, the last row the heads) and joins them with links. Tests check this
data without drawing anything; ``runs.drawing`` draws it (plotly, SVG).

Each family lays itself out (``Family.layout``, found through the family registry); the
built-in layouts are below:

- ``tree``: one box per group of tasks sharing a stage, as wide as its tasks' columns, so
  the network reads as a trunk that branches into columns labelled with task names.
- ``cross_stitch``: one column per task; after each unit's stage, links from every
  column into every column labelled with the learned α (mean over channels).
- ``progressive``: one column per task in training order; lateral links from every
  earlier column into the stages that have laterals (adapters labelled with their scale).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

from ._base import ArchConfig, config_from_dict, get_family


@dataclass(frozen=True)
class Box:
    """A module: spans columns ``x0..x1`` (centres, in column units) on ``row``."""

    x0: float
    x1: float
    row: int
    kind: str  # "input" | "stage" | "head"
    label: str
    tasks: tuple[str, ...] = ()

    @property
    def centre(self) -> float:
        return (self.x0 + self.x1) / 2


@dataclass(frozen=True)
class Link:
    """Data flowing from the bottom of a box at (x0, row0) to the top of one at (x1, row1)."""

    x0: float
    row0: int
    x1: float
    row1: int
    kind: str  # "flow" | "cross_stitch" | "lateral"
    label: str = ""
    weight: float | None = None  # 0..1: line strength (α), None for plain flow


@dataclass(frozen=True)
class ArchDrawing:
    family: str
    title: str
    columns: tuple[str, ...]  # header of each column (task names; progressive: "1. task")
    row_labels: tuple[str, ...]  # "input", "stage 0", ..., "heads"
    boxes: tuple[Box, ...]
    links: tuple[Link, ...]
    notes: tuple[str, ...] = field(default=())


# --------------------------------------------------------------------------- stages
def _n_stages(arch: ArchConfig, n_stages: int | None) -> int:
    family = get_family(arch.family)
    used = family.stages_used(arch)
    if n_stages is not None and (n_stages < used or (family.fixed_depth and n_stages != used)):
        raise ValueError(f"{arch.summary()!r} uses {used} stages, but n_stages is {n_stages}")
    return n_stages if n_stages is not None else used


def stage_rows(n_stages: int) -> tuple[str, ...]:
    """Row labels: the input, one row per backbone stage, the heads."""
    return ("input", *(f"stage {i}" for i in range(n_stages)), "heads")


# --------------------------------------------------------------------------- layout
def layout(arch: ArchConfig | Mapping[str, Any], details: Mapping[str, Any] | None = None, n_stages: int | None = None,
           tasks: Sequence[str] | None = None) -> ArchDrawing:
    """Plain drawing data for one architecture.

    ``details`` is the trial's ``architecture_details`` (cross-stitch α, progressive
    scales); without it the α drawn are their initial values. ``n_stages`` is the
    backbone's (default: as many as the architecture uses). ``tasks`` orders the columns of
    column families (default: the order the details or the config give).
    """
    if not isinstance(arch, ArchConfig):
        arch = config_from_dict(arch)
    return get_family(arch.family).layout(arch, dict(details or {}), _n_stages(arch, n_stages), tasks)


def columns_boxes(columns: Sequence[str], b: int) -> tuple[list[Box], list[Link]]:
    """The input, one box per column and stage, and the heads, joined down each column."""
    t = len(columns)
    boxes = [Box(0, t - 1, 0, "input", "input", tuple(columns))]
    links = []
    for c, name in enumerate(columns):
        for i in range(b):
            boxes.append(Box(c, c, i + 1, "stage", name, (name,)))
        boxes.append(Box(c, c, b + 1, "head", name, (name,)))
        links += [Link(c, r, c, r + 1, "flow") for r in range(b + 1)]
    return boxes, links


def tree_layout(arch, details, b: int, tasks) -> ArchDrawing:
    rows = stage_rows(b)
    # Leaf order by walking the tree, so every group's tasks sit in adjacent columns.
    order: list[str] = []

    def walk(group: tuple[str, ...], stage: int) -> None:
        if stage == b:
            order.extend(group)
            return
        for child in arch.stages[stage]:
            if set(child) <= set(group):
                walk(child, stage + 1)

    walk(tuple(t for g in arch.stages[0] for t in g), 0)
    col = {name: i for i, name in enumerate(order)}
    boxes = [Box(0, len(order) - 1, 0, "input", "input", tuple(order))]
    links = []
    parents = [boxes[0]]
    for i, partition in enumerate(arch.stages):
        here = []
        for group in partition:
            xs = sorted(col[t] for t in group)
            box = Box(xs[0], xs[-1], i + 1, "stage", " ".join(sorted(group, key=col.get)), tuple(sorted(group, key=col.get)))
            parent = next(p for p in parents if set(group) <= set(p.tasks))
            links.append(Link(parent.centre, i, box.centre, i + 1, "flow"))
            here.append(box)
        boxes += here
        parents = here
    for name in order:
        parent = next(p for p in parents if name in p.tasks)
        boxes.append(Box(col[name], col[name], b + 1, "head", name, (name,)))
        links.append(Link(parent.centre, b, col[name], b + 1, "flow"))
    shared = [i for i, p in enumerate(arch.stages) if len(p) == 1]
    note = f"stage{'s' if len(shared) > 1 else ''} {_span(shared)} shared by all tasks" if shared else "no stage shared by all tasks"
    return ArchDrawing("tree", arch.summary(), tuple(order), rows, tuple(boxes), tuple(links), (note,))


def _span(stages: Sequence[int]) -> str:
    return f"{stages[0]}-{stages[-1]}" if len(stages) > 1 and stages[-1] - stages[0] == len(stages) - 1 else ",".join(map(str, stages))


def _mean_alpha(matrix: Any, n: int) -> list[list[float]] | None:
    """α[i][j] averaged over channels; None unless it is an n×n(×C) nested list."""
    try:
        out = [[float(sum(c) / len(c)) if isinstance(c, list) else float(c) for c in row] for row in matrix]
    except (TypeError, ValueError, ZeroDivisionError):
        return None
    return out if len(out) == n and all(len(r) == n for r in out) else None


def cross_stitch_layout(arch, details, b: int, tasks) -> ArchDrawing:
    rows = stage_rows(b)
    columns = tuple(details.get("tasks") or tasks or ())
    if not columns:
        raise ValueError("a cross-stitch drawing needs the task names: pass `tasks` or details with 'tasks'")
    t = len(columns)
    boxes, links = columns_boxes(columns, b)
    notes = []
    learned = details.get("alpha") or {}
    for s in arch.stages:
        alpha = _mean_alpha(learned.get(f"after_stage{s}"), t)
        source = "learned"
        if alpha is None:  # no details: the initial α
            off = (1 - arch.alpha_self) / (t - 1) if t > 1 else 0.0
            alpha = [[arch.alpha_self if i == j else off for j in range(t)] for i in range(t)]
            source = "initial"
        links = [k for k in links if not (k.row0 == s + 1 and k.kind == "flow")]
        for i in range(t):
            for j in range(t):
                # Every α sets a line's strength; labels on the self α (all of them for two
                # tasks), the full matrix in the notes, so crossing lines stay readable.
                label = f"{alpha[i][j]:.2f}" if i == j or t <= 2 else ""
                links.append(Link(j, s + 1, i, s + 2, "cross_stitch", label, max(0.0, min(1.0, alpha[i][j]))))
        for i in range(t):
            mix = ", ".join(f"{columns[j]} {alpha[i][j]:.2f}" for j in range(t))
            notes.append(f"after stage {s}, {source} α into {columns[i]}: {mix}")
    return ArchDrawing("cross_stitch", arch.summary(), columns, rows, tuple(boxes), tuple(links), tuple(notes))


def progressive_layout(arch, details, b: int, tasks) -> ArchDrawing:
    rows = stage_rows(b)
    order = tuple(details.get("order") or arch.order)
    boxes, links = columns_boxes(order, b)
    scales = details.get("scale") or {}
    for k in range(1, len(order)):
        for i in arch.lateral_stages:
            scale = scales.get(f"column{k}.stage{i}")
            label = f"a={scale:.2f}" if isinstance(scale, (int, float)) and math.isfinite(scale) else ""
            for j in range(k):
                links.append(Link(j, i, k, i + 1, "lateral", label))
    notes = (
        f"columns trained left to right ({' → '.join(order)}); earlier columns frozen",
        f"{arch.lateral} laterals into stage{'s' if len(arch.lateral_stages) > 1 else ''} {', '.join(map(str, arch.lateral_stages))}",
    )
    columns = tuple(f"{k + 1}. {name}" for k, name in enumerate(order))
    return ArchDrawing("progressive", arch.summary(), columns, rows, tuple(boxes), tuple(links), notes)
