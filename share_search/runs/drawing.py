"""Drawings of a searched architecture: ``arch.layout``'s plain data drawn with plotly or as SVG.

``to_figure`` draws a layout with plotly for the HTML report and ``to_svg`` writes
standalone SVG text for the dashboard's trial artifact.
"""

from __future__ import annotations

from xml.sax.saxutils import escape

from ..arch.layout import ArchDrawing, Box, Link

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
