"""Drawings of a searched architecture: the layout as plain data, then plotly or SVG.

``layout(arch, details, n_stages)`` places boxes (the input, one box per module of each
stage, one head per task) on a grid of task columns and rows (row 0 the input, row i+1
backbone stage i, the last row the heads) and joins them with links. Tests check this
data without drawing anything; ``to_figure`` draws it with plotly for the HTML report and
``to_svg`` writes standalone SVG text for the dashboard's trial artifact.

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
from xml.sax.saxutils import escape

from ..arch import ArchConfig, config_from_dict, get_family

FAMILY_COLOURS = {"tree": "#1f77b4", "cross_stitch": "#ff7f0e", "progressive": "#2ca02c"}
_OTHER_COLOURS = ("#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf")
_LINK_COLOURS = {"flow": "#555555", "cross_stitch": "#d62728", "lateral": "#9467bd"}
HALF_WIDTH = 0.38  # half a column's box width, in column units
HALF_HEIGHT = 0.22  # half a box's height, in row units


def family_colour(family: str) -> str:
    """One colour per family, the same in every figure of a report."""
    if family in FAMILY_COLOURS:
        return FAMILY_COLOURS[family]
    return _OTHER_COLOURS[sum(map(ord, family)) % len(_OTHER_COLOURS)]


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


# --------------------------------------------------------------------------- plotly
def to_figure(drawing: ArchDrawing, title: str | None = None):
    """A plotly figure of the drawing (boxes as shapes, links as lines, labels as text)."""
    import plotly.graph_objects as go

    fig = go.Figure()
    colour = family_colour(drawing.family)
    for link in drawing.links:
        y0, y1 = link.row0 + HALF_HEIGHT, link.row1 - HALF_HEIGHT
        width = 1.5 if link.weight is None else 0.5 + 3.5 * link.weight
        fig.add_shape(type="line", x0=link.x0, y0=y0, x1=link.x1, y1=y1, line=dict(color=_LINK_COLOURS[link.kind], width=width), layer="below")
    for box in drawing.boxes:
        fig.add_shape(
            type="rect", x0=box.x0 - HALF_WIDTH, x1=box.x1 + HALF_WIDTH, y0=box.row - HALF_HEIGHT, y1=box.row + HALF_HEIGHT,
            fillcolor=_box_fill(box, colour), line=dict(color=colour if box.kind == "stage" else "#888888"), layer="below",
        )
    fig.add_trace(go.Scatter(
        x=[b.centre for b in drawing.boxes], y=[b.row for b in drawing.boxes], mode="text",
        text=[_fit(b.label, b.x1 - b.x0 + 2 * HALF_WIDTH) for b in drawing.boxes],
        hovertext=[f"{drawing.row_labels[b.row]}: {', '.join(b.tasks)}" for b in drawing.boxes], hoverinfo="text",
        textfont=dict(color=["white" if b.kind == "stage" else "black" for b in drawing.boxes], size=11), showlegend=False,
    ))
    fig.add_trace(go.Scatter(
        x=list(range(len(drawing.columns))), y=[-0.62] * len(drawing.columns), mode="text", text=list(drawing.columns),
        textfont=dict(size=11, color="#444444"), hoverinfo="skip", showlegend=False,
    ))
    labelled = [k for k in drawing.links if k.label]
    if labelled:
        at = [_label_point(k) for k in labelled]
        fig.add_trace(go.Scatter(
            x=[p[0] for p in at], y=[p[1] for p in at], mode="text", text=[k.label for k in labelled],
            textfont=dict(size=9, color=[_LINK_COLOURS[k.kind] for k in labelled]), hoverinfo="skip", showlegend=False,
        ))
    n_cols = max(len(drawing.columns), 1)
    longest = max((len(n) for n in drawing.notes), default=0)
    fig.update_layout(
        title=dict(text=title or drawing.title, font=dict(size=13)),
        height=90 + 62 * len(drawing.row_labels) + 16 * len(drawing.notes), width=int(max(420, 130 + 150 * n_cols, 80 + 6 * longest)),
        margin=dict(l=70, r=20, t=50, b=20 + 16 * len(drawing.notes)), plot_bgcolor="white",
        xaxis=dict(visible=False, range=[-0.6, n_cols - 0.4]),
        yaxis=dict(range=[len(drawing.row_labels) - 0.5, -0.85], tickmode="array", tickvals=list(range(len(drawing.row_labels))),
                   ticktext=list(drawing.row_labels), showgrid=False, zeroline=False),
    )
    for i, note in enumerate(drawing.notes):
        fig.add_annotation(text=note, xref="paper", yref="paper", x=0, y=0, yshift=-18 - 16 * i, showarrow=False,
                           xanchor="left", yanchor="top", font=dict(size=10, color="#444444"))
    return fig


def _box_fill(box: Box, colour: str) -> str:
    return {"stage": colour, "head": "#f4f4f4"}.get(box.kind, "#e8e8e8")


def _fit(text: str, width_columns: float, chars_per_column: int = 16) -> str:
    limit = max(3, int(width_columns * chars_per_column))
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _label_point(link: Link, at: float = 0.7) -> tuple[float, float]:
    """Where a link's label goes: most of the way down, near the box it feeds."""
    y0, y1 = link.row0 + HALF_HEIGHT, link.row1 - HALF_HEIGHT
    return link.x0 + at * (link.x1 - link.x0), y0 + at * (y1 - y0)


# --------------------------------------------------------------------------- SVG
_COL_PX, _ROW_PX, _LEFT_PX, _TOP_PX, _NOTE_PX = 150, 62, 80, 56, 16


def to_svg(drawing: ArchDrawing, title: str | None = None) -> str:
    """Standalone SVG text of the drawing (no browser or image library needed)."""
    n_cols = max(len(drawing.columns), 1)
    longest = max((len(n) for n in drawing.notes), default=0)
    width = int(max(_LEFT_PX + _COL_PX * n_cols + 20, 20 + 5.6 * longest))
    height = _TOP_PX + _ROW_PX * len(drawing.row_labels) + _NOTE_PX * len(drawing.notes) + 10

    def x(col: float) -> float:
        return _LEFT_PX + _COL_PX * (col + 0.5)

    def y(row: float) -> float:
        return _TOP_PX + _ROW_PX * (row + 0.5)

    colour = family_colour(drawing.family)
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" viewBox="0 0 {width} {height}" '
        'font-family="Helvetica, Arial, sans-serif">',
        f'<rect width="{width}" height="{height}" fill="white"/>',
        f'<text x="10" y="22" font-size="14" font-weight="bold">{escape(title or drawing.title)}</text>',
    ]
    for c, name in enumerate(drawing.columns):
        out.append(f'<text x="{x(c):.1f}" y="44" font-size="11" text-anchor="middle" fill="#444">{escape(name)}</text>')
    for r, name in enumerate(drawing.row_labels):
        out.append(f'<text x="8" y="{y(r) + 4:.1f}" font-size="11" fill="#444">{escape(name)}</text>')
    for link in drawing.links:
        width_px = 1.5 if link.weight is None else 0.5 + 3.5 * link.weight
        out.append(
            f'<line x1="{x(link.x0):.1f}" y1="{y(link.row0 + HALF_HEIGHT):.1f}" x2="{x(link.x1):.1f}" '
            f'y2="{y(link.row1 - HALF_HEIGHT):.1f}" stroke="{_LINK_COLOURS[link.kind]}" stroke-width="{width_px:.2f}"/>'
        )
    for box in drawing.boxes:
        left, right = x(box.x0 - HALF_WIDTH), x(box.x1 + HALF_WIDTH)
        top, bottom = y(box.row - HALF_HEIGHT), y(box.row + HALF_HEIGHT)
        stroke = colour if box.kind == "stage" else "#888888"
        text_colour = "white" if box.kind == "stage" else "black"
        out.append(
            f'<rect x="{left:.1f}" y="{top:.1f}" width="{right - left:.1f}" height="{bottom - top:.1f}" rx="5" '
            f'fill="{_box_fill(box, colour)}" stroke="{stroke}"><title>{escape(", ".join(box.tasks))}</title></rect>'
        )
        label = _fit(box.label, box.x1 - box.x0 + 2 * HALF_WIDTH)
        out.append(f'<text x="{x(box.centre):.1f}" y="{y(box.row) + 4:.1f}" font-size="11" text-anchor="middle" fill="{text_colour}">{escape(label)}</text>')
    for link in drawing.links:
        if link.label:
            lx, ly = _label_point(link)
            out.append(
                f'<text x="{x(lx):.1f}" y="{y(ly) + 3:.1f}" font-size="9" text-anchor="middle" fill="{_LINK_COLOURS[link.kind]}" '
                f'stroke="white" stroke-width="3" paint-order="stroke">{escape(link.label)}</text>'
            )
    base = _TOP_PX + _ROW_PX * len(drawing.row_labels)
    for i, note in enumerate(drawing.notes):
        out.append(f'<text x="10" y="{base + _NOTE_PX * i + 4}" font-size="10" fill="#444">{escape(note)}</text>')
    out.append("</svg>")
    return "\n".join(out)
