"""The run report: one self-contained HTML file (plotly inlined, opens offline).

Plain data first, figures second (like Optuna's ``_get_pareto_front_info`` then
``_get_pareto_front_plot``): ``report_data(study)`` reads the study once into a
``ReportData`` of small dataclasses that tests check without plotly; the ``*_figure``
functions draw them; ``render_html`` assembles the page. Only the study is read (tasks
come from its ``tasks`` user attribute), never the dataset.
"""

from __future__ import annotations

import base64
import html
import math
import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple, Sequence

import pandas as pd

from ..arch.layout import ArchDrawing, layout
from ..errors import RunError
from ..text import plural
from . import drawing
from .artifacts import trial_pictures
from .pictures import PICTURE_SAMPLES, SEGMENTATION_PALETTE, colour_legend
from .rank import board_statement, metric_column
from .record import TrialRecord, stage_count, study_records
from .uncertainty import TIE_TEST, separation_line

DEFAULT_TOP = 3
REPORT_TITLE = "share-search report: "  # the page title starts so; a run rewrites only such a report.html
_RANK_COLOURS = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#e377c2", "#17becf")


class TaskInfo(NamedTuple):
    """A task as the study records it (its ``tasks`` user attribute)."""

    name: str
    metric: str
    higher_is_better: bool
    class_names: tuple[str, ...] = ()
    directions: tuple[tuple[str, bool], ...] = ()  # (metric, higher is better) for every metric, primary first
    type: str = ""  # the task type ("" in a study made before it was recorded)

    @property
    def metric_directions(self) -> dict[str, bool]:
        """Every metric's direction as the study recorded it (a study made before it recorded
        them has the primary metric's only)."""
        return dict(self.directions) if self.directions else {self.metric: self.higher_is_better}

    @property
    def metrics(self) -> tuple[str, ...]:
        return tuple(self.metric_directions)

    @property
    def axis_title(self) -> str:
        return f"{self.name} {self.metric} ({'higher' if self.higher_is_better else 'lower'} is better)"

    @property
    def described(self) -> str:
        """The axis title, and the classes when the data named them (e.g. cat, dog)."""
        return self.axis_title + (f", classes {class_list(self.class_names)}" if self.class_names else "")


def class_list(names, shown: int = 12) -> str:
    """Class names in output order, the first ``shown`` of them."""
    more = f" and {len(names) - shown} more" if len(names) > shown else ""
    return ", ".join(str(n) for n in names[:shown]) + more


@dataclass(frozen=True)
class Point:
    trial: int
    rank: int | None
    family: str
    arch: str
    values: dict[str, float]  # task -> validation metric
    delta_m: float | None
    params: float | None
    macs: float | None
    front: bool  # on the Pareto front of the per-task metrics
    se: dict[str, float | None] = field(default_factory=dict)  # task -> standard error over seeds (search.repeats)
    delta_m_se: float | None = None
    tied: bool = False  # in the tied group: rank 1, or tied_with_best (only where seeds measured a spread)


@dataclass(frozen=True)
class Curve:
    """One trial's validation metric per task over the epochs of its history."""

    rank: int
    trial: int
    arch: str
    family: str
    epochs: list[float]  # whole epochs; fractions where a trial also validated within epochs (train.eval_every)
    phases: list[str]
    values: dict[str, list[float | None]]  # task -> one value per epoch


@dataclass(frozen=True)
class TopDrawing:
    rank: int
    trial: int
    delta_m: float | None
    drawing: ArchDrawing


@dataclass(frozen=True)
class TopPictures:
    """A top trial's prediction pictures (its artifacts): task -> PNG, a row per validation
    sample of input, ground truth, prediction."""

    rank: int
    trial: int
    arch: str
    delta_m: float | None
    pictures: dict[str, bytes]


@dataclass
class ReportData:
    name: str
    tasks: tuple[TaskInfo, ...]
    board: pd.DataFrame
    rank_by: str
    counts: dict[str, int]
    objectives: list[str]
    points: list[Point]  # ranked trials, best first
    curves: list[Curve]
    drawings: list[TopDrawing]
    has_delta_m: bool
    notes: list[str] = field(default_factory=list)
    seeded: bool = False  # some ranked architecture has 2 or more seeds: error bars and the tied group are drawn
    pictures: list[TopPictures] = field(default_factory=list)

    @property
    def families(self) -> list[str]:
        return sorted({p.family for p in self.points})

    @property
    def front(self) -> list[Point]:
        return [p for p in self.points if p.front]


# --------------------------------------------------------------------------- plain data
def study_tasks(study) -> tuple[TaskInfo, ...]:
    raw = study.user_attrs.get("tasks")
    if not raw:
        raise RunError(f"study {study.study_name!r} has no `tasks` user attribute; it was not written by share-search run")
    return tuple(
        TaskInfo(t["name"], t["metric"], bool(t["higher_is_better"]), tuple(t.get("class_names") or ()),
                 tuple((str(m), bool(h)) for m, h in (t.get("metrics") or {}).items()), str(t.get("type") or ""))
        for t in raw
    )


def study_leaderboard(study, rank_by: str = "delta_m", budget: str | None = None) -> pd.DataFrame:
    """The leaderboard from the study alone (its ``tasks`` user attribute, and the Δm
    convention of the spec it keeps): no data is loaded and nothing a run folder names is
    imported, so it is safe on any run folder."""
    from .study import delta_m_convention_of, leaderboard_of

    return leaderboard_of(study_records(study), study_tasks(study), rank_by=rank_by, budget=budget, convention=delta_m_convention_of(study))


def _num(value: Any) -> float | None:
    try:
        out = float(value)
    except (TypeError, ValueError):
        return None
    return out if math.isfinite(out) else None


def is_seeded(board: pd.DataFrame) -> bool:
    """Whether seeds measured a spread: some ranked trial has 2 or more (``search.repeats``)."""
    if "n_seeds" not in board:
        return False
    return bool((board.loc[board["rank"].notna(), "n_seeds"].fillna(0) >= 2).any())


def ties_tested(board: pd.DataFrame) -> bool:
    """Whether the board has a tied group: seeds measured a spread and the ranking has a single
    best to test against (a Pareto ranking has none; its ``tie_key`` is None)."""
    return is_seeded(board) and board.attrs.get("tie_key") is not None


def points_of(board: pd.DataFrame, tasks: Sequence[TaskInfo]) -> list[Point]:
    """The ranked trials of a leaderboard as points, best first; ``front`` means front 1;
    ``se`` and ``tied`` only where seeds measured a spread (``is_seeded``)."""
    ranked = board[board["rank"].notna()].sort_values("rank")
    seeded, tested = is_seeded(board), ties_tested(board)
    return [
        Point(
            trial=int(r["trial"]), rank=int(r["rank"]), family=str(r["family"]), arch=str(r["arch"]),
            values={t.name: float(r[f"val.{t.name}"]) for t in tasks}, delta_m=_num(r.get("delta_m")),
            params=_num(r.get("params")), macs=_num(r.get("macs")), front=on_front(r["pareto_front"]),
            se={t.name: _num(r.get(f"val.{t.name}.se")) for t in tasks} if seeded else {},
            delta_m_se=_num(r.get("delta_m.se")) if seeded else None,
            tied=tested and in_tied_group(r),
        )
        for _, r in ranked.iterrows()
    ]


def in_tied_group(row) -> bool:
    """Rank 1, or an architecture its seeds cannot tell from rank 1 (``tied_with_best``)."""
    tied = row.get("tied_with_best")
    return int(row["rank"]) == 1 or (tied is not None and not pd.isna(tied) and bool(tied))


def uncertainty_note(board: pd.DataFrame) -> str:
    """What the report says about seeds: the error bars and tied group, or that one seed measures neither."""
    if not is_seeded(board):
        return ("One seed per architecture: no uncertainty is measured, so there are no error bars and no "
                "tied group (search.repeats >= 2 measures them).")
    bars = "Error bars are ± one standard error over each architecture's seeds; "
    if not ties_tested(board):
        return bars + "a Pareto ranking has no single best, so no tied group is marked."
    return (bars + "the tied group (rank 1 and every architecture tied_with_best, circled in the figures and marked in "
            f"the table's `tied` column) is what the seeds cannot separate from the best. {TIE_TEST}")


def on_front(value: Any) -> bool:
    return value is not None and not pd.isna(value) and int(value) == 1


def curve_of(rank: int, record: TrialRecord, tasks: Sequence[TaskInfo]) -> Curve:
    """Validation metric per task and epoch from a trial's history."""
    history = record.history or []
    return Curve(
        rank=rank, trial=record.number, arch=record.arch or "", family=record.family or "",
        epochs=[float(row["at_epoch"]) if "at_epoch" in row else int(row["epoch"]) for row in history], phases=[str(row.get("phase", "")) for row in history],
        values={t.name: [_num(row.get(f"{t.name}.{t.metric}")) for row in history] for t in tasks},
    )


def report_data(
    study, top: int = DEFAULT_TOP, rank_by: str = "delta_m", board: pd.DataFrame | None = None, artifact_dir: str | Path | None = None
) -> ReportData:
    """Everything the report shows, read from the study (no data set, no plotly). ``board``:
    the study's leaderboard when the caller has it (ranked as its ``rank_by`` attribute says);
    ``artifact_dir``: the run's artifact store, where the top trials' prediction pictures are."""
    tasks = study_tasks(study)
    records = {r.number: r for r in study_records(study)}
    if board is None:
        from .study import delta_m_convention_of, leaderboard_of

        board = leaderboard_of(list(records.values()), tasks, rank_by=rank_by, convention=delta_m_convention_of(study))
    rank_by = board.attrs.get("rank_by", rank_by)
    has_delta_m = bool(board["delta_m"].notna().any())
    n_stages = stage_count(study.user_attrs, records.values())
    points = points_of(board, tasks)
    notes = [uncertainty_note(board)]
    separation = separation_line(board) if is_seeded(board) else None
    if separation:
        notes.append(separation[0].upper() + separation[1:] + ".")
    if board.attrs.get("race") is not None:
        notes.append(board.attrs["race"].line()[0].upper() + board.attrs["race"].line()[1:] + ".")
    if not has_delta_m:
        notes.append("Δm is undefined in this study (no finished single-task baseline): trials are ranked by Pareto front.")
    curves, drawings = [], []
    for p in points[:top]:
        r = records[p.trial]
        curves.append(curve_of(p.rank, r, tasks))
        if not r.plan.arch:
            notes.append(f"rank {p.rank} (trial {p.trial}) is not drawn: the trial recorded no `arch_json`")
            continue
        try:
            d = layout(r.plan.arch, r.details, n_stages, tasks=[x.name for x in tasks])
        except (KeyError, ValueError) as exc:  # an unknown family, or one with no drawing
            notes.append(f"rank {p.rank} (trial {p.trial}) is not drawn: {exc}")
            continue
        drawings.append(TopDrawing(p.rank, p.trial, p.delta_m, d))
    pictures = top_pictures(study, points[:top], tasks, artifact_dir) if artifact_dir is not None else []
    return ReportData(
        name=study.study_name, tasks=tasks, board=board, rank_by=rank_by if has_delta_m else "pareto",
        counts={str(k): int(v) for k, v in board["state"].value_counts().items()},
        objectives=list(study.metric_names or []), points=points, curves=curves, drawings=drawings,
        has_delta_m=has_delta_m, notes=notes, seeded=is_seeded(board), pictures=pictures,
    )


def top_pictures(study, points: Sequence[Point], tasks: Sequence[TaskInfo], artifact_dir: str | Path) -> list[TopPictures]:
    """The prediction pictures the given trials stored, in the study's task order (trials
    without dense tasks have none)."""
    frozen = {t.number: t for t in study.get_trials(deepcopy=False)}
    out = []
    for p in points:
        found = trial_pictures(frozen[p.trial], artifact_dir) if p.trial in frozen else {}
        shown = {t.name: found[t.name] for t in tasks if t.name in found}
        if shown:
            out.append(TopPictures(p.rank, p.trial, p.arch, p.delta_m, shown))
    return out


# --------------------------------------------------------------------------- figures
TIED_LABEL = "tied group (rank 1 and tied_with_best)"
TIED_MARKS = dict(  # an open black ring around each point of the tied group, drawn over the family's marker
    mode="markers", name=TIED_LABEL, hoverinfo="skip",
    marker=dict(symbol="circle-open", size=22, color="black", line=dict(width=2)),
)


def error_bars(se: Sequence[float | None], seeded: bool) -> dict | None:
    """Plotly error bars of ± one standard error (none with one seed, where none is measured)."""
    if not seeded:
        return None
    return dict(type="data", array=list(se), visible=True, thickness=1.2, width=4)


def tied_group(data: ReportData) -> list[Point]:
    """The points the seeds cannot separate from the best (empty with one seed)."""
    return [p for p in data.points if p.tied]


def pareto_figure(data: ReportData):
    """Per-task metrics against each other, the Pareto front marked; None for one task."""
    import plotly.graph_objects as go

    tasks, points = data.tasks, data.points
    if len(tasks) < 2 or not points:
        return None
    fig = go.Figure()
    if len(tasks) == 2:
        a, b = tasks
        for family in data.families:
            mine = [p for p in points if p.family == family]
            fig.add_trace(go.Scatter(
                x=[p.values[a.name] for p in mine], y=[p.values[b.name] for p in mine], mode="markers", name=family,
                marker=dict(color=drawing.family_colour(family), size=[13 if p.front else 8 for p in mine],
                            symbol=["diamond" if p.front else "circle" for p in mine], line=dict(color="black", width=[2 if p.front else 0 for p in mine])),
                hovertext=[_hover(p) for p in mine], hoverinfo="text",
                error_x=error_bars([p.se.get(a.name) for p in mine], data.seeded),
                error_y=error_bars([p.se.get(b.name) for p in mine], data.seeded),
            ))
        front = sorted(data.front, key=lambda p: p.values[a.name])
        fig.add_trace(go.Scatter(x=[p.values[a.name] for p in front], y=[p.values[b.name] for p in front], mode="lines",
                                 name="Pareto front", line=dict(color="black", dash="dot"), hoverinfo="skip"))
        tied = tied_group(data)
        if tied:
            fig.add_trace(go.Scatter(x=[p.values[a.name] for p in tied], y=[p.values[b.name] for p in tied], **TIED_MARKS))
        fig.update_layout(xaxis_title=a.axis_title, yaxis_title=b.axis_title)
    else:
        for family in data.families:
            mine = [p for p in points if p.family == family]
            fig.add_trace(go.Splom(
                dimensions=[dict(label=f"{t.name} {'↑' if t.higher_is_better else '↓'}", values=[p.values[t.name] for p in mine]) for t in tasks],
                name=family, diagonal_visible=False, showupperhalf=False, hovertext=[_hover(p) for p in mine], hoverinfo="text",
                marker=dict(color=drawing.family_colour(family), size=[12 if p.front else 7 for p in mine],
                            symbol=["diamond" if p.front else "circle" for p in mine], line=dict(color="black", width=[2 if p.front else 0 for p in mine])),
            ))
        tied = tied_group(data)
        if tied:  # a scatter matrix draws no error bars: the table holds each metric's ± s.e.
            marks = {k: v for k, v in TIED_MARKS.items() if k != "mode"}
            fig.add_trace(go.Splom(dimensions=[dict(label=f"{t.name} {'↑' if t.higher_is_better else '↓'}", values=[p.values[t.name] for p in tied]) for t in tasks],
                                   diagonal_visible=False, showupperhalf=False, **marks))
    title = "validation metrics per task: Pareto front as black-edged diamonds"
    if data.seeded:
        title += (", tied group circled" if tied_group(data) else "") + (", ± s.e." if len(tasks) == 2 else "")
    fig.update_layout(title=title, height=520 if len(tasks) > 2 else 460, legend_title="family")
    return fig


def _hover(p: Point) -> str:
    values = ", ".join(f"{k} {v:.4g}" for k, v in p.values.items())
    dm = "" if p.delta_m is None else f"<br>Δm {p.delta_m:+.2f}%" + ("" if p.delta_m_se is None else f" ± {p.delta_m_se:.2f}")
    return (f"rank {p.rank} · trial {p.trial}<br>{html.escape(p.arch)}<br>{values}{dm}" + ("<br>on the Pareto front" if p.front else "")
            + ("<br>in the tied group" if p.tied else ""))


def delta_m_by_family_figure(data: ReportData):
    import plotly.graph_objects as go

    if not data.has_delta_m:
        return None
    fig = go.Figure()
    if data.seeded:
        _delta_m_with_error_bars(fig, data)
    else:
        for family in data.families:
            mine = [p for p in data.points if p.family == family and p.delta_m is not None]
            fig.add_trace(go.Box(y=[p.delta_m for p in mine], name=family, boxpoints="all", jitter=0.4, pointpos=0,
                                 marker=dict(color=drawing.family_colour(family)), hovertext=[_hover(p) for p in mine], hoverinfo="text"))
    fig.add_hline(y=0, line=dict(color="grey", dash="dash"), annotation_text="single-task networks (Δm = 0)")
    fig.update_layout(title="Δm by family", yaxis_title="Δm (%), higher is better", showlegend=False, height=420)
    return fig


def _delta_m_with_error_bars(fig, data: ReportData) -> None:
    """Δm by family with ± s.e.: a box per family at x = its index, its architectures spread
    evenly beside it (not jittered, so each error bar stays on its point), the tied group circled."""
    import plotly.graph_objects as go

    placed: list[tuple[float, Point]] = []
    for i, family in enumerate(data.families):
        mine = [p for p in data.points if p.family == family and p.delta_m is not None]
        colour = drawing.family_colour(family)
        fig.add_trace(go.Box(x=[i] * len(mine), y=[p.delta_m for p in mine], name=family, boxpoints=False, orientation="v",
                             marker=dict(color=colour), hoverinfo="skip", width=0.7))
        xs = [i + (0.0 if len(mine) < 2 else -0.3 + 0.6 * k / (len(mine) - 1)) for k in range(len(mine))]
        fig.add_trace(go.Scatter(x=xs, y=[p.delta_m for p in mine], mode="markers", name=family, marker=dict(color=colour, size=8),
                                 error_y=error_bars([p.delta_m_se for p in mine], True), hovertext=[_hover(p) for p in mine], hoverinfo="text"))
        placed += zip(xs, mine)
    tied = [(x, p) for x, p in placed if p.tied]
    if tied:
        fig.add_trace(go.Scatter(x=[x for x, _ in tied], y=[p.delta_m for _, p in tied], **TIED_MARKS))
    fig.update_xaxes(tickvals=list(range(len(data.families))), ticktext=data.families)


def cost_figure(data: ReportData):
    """Δm against parameters and MACs (log scale), one colour per family."""
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    if not data.has_delta_m:
        return None
    fig = make_subplots(rows=1, cols=2, shared_yaxes=True, subplot_titles=("parameters", "MACs per sample"))
    for family in data.families:
        mine = [p for p in data.points if p.family == family and p.delta_m is not None]
        for col, key in ((1, "params"), (2, "macs")):
            fig.add_trace(go.Scatter(
                x=[getattr(p, key) for p in mine], y=[p.delta_m for p in mine], mode="markers", name=family, legendgroup=family,
                showlegend=col == 1, marker=dict(color=drawing.family_colour(family), size=9),
                hovertext=[_hover(p) for p in mine], hoverinfo="text", error_y=error_bars([p.delta_m_se for p in mine], data.seeded),
            ), row=1, col=col)
    tied = [p for p in tied_group(data) if p.delta_m is not None]
    for col, key in ((1, "params"), (2, "macs")) if tied else ():
        fig.add_trace(go.Scatter(x=[getattr(p, key) for p in tied], y=[p.delta_m for p in tied], legendgroup="tied", showlegend=col == 1, **TIED_MARKS), row=1, col=col)
    fig.update_xaxes(type="log")
    fig.update_yaxes(title_text="Δm (%), higher is better", row=1, col=1)
    fig.update_layout(title="cost against Δm", height=420, legend_title="family")
    return fig


def race_figure(data: ReportData):
    """The confirmation race (``search.confirm``): each candidate's mean paired Δm ± one standard
    error after each round, over the seeds every candidate of the round had; a cross where the
    race dropped it (or its seed failed). None without a judged round."""
    import plotly.graph_objects as go

    standing = data.board.attrs.get("race")
    if standing is None or not standing.rounds:
        return None
    fig = go.Figure()
    for c in standing.candidates:
        judged = [(r.number, r.spreads[c]) for r in standing.rounds if c in r.spreads]
        label = f"trial {c}" + (" (leader)" if c == standing.leader else "")
        fig.add_trace(go.Scatter(
            x=[n for n, _ in judged], y=[s.mean for _, s in judged], mode="lines+markers", name=label,
            error_y=error_bars([s.se for _, s in judged], True), hovertext=[f"{label}, round {n}: Δm {s.mean:.3g} ± {s.se:.2g}" for n, s in judged],
            hoverinfo="text",
        ))
    out = [(r.number, c, r.spreads[c].mean, f"dropped, p = {p:.3g}") for r in standing.rounds for c, p in r.dropped.items()]
    if out:
        fig.add_trace(go.Scatter(x=[o[0] for o in out], y=[o[2] for o in out], mode="markers", name="dropped",
                                 marker=dict(symbol="x", size=14, color="black"), hovertext=[f"trial {o[1]} {o[3]}" for o in out], hoverinfo="text"))
    rounds = [r.number for r in standing.rounds]
    fig.update_xaxes(tickvals=rounds, ticktext=[f"round {r.number} ({r.seeds} seeds)" for r in standing.rounds])
    fig.update_layout(title=f"confirmation race (paired t-test by seed, α = {standing.alpha})", yaxis_title="Δm (%), mean ± s.e.",
                      height=420, legend_title="candidate")
    return fig


def curves_figure(data: ReportData):
    """Validation metric per epoch of the top architectures, one panel per task."""
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    if not data.curves:
        return None
    tasks = data.tasks
    fig = make_subplots(rows=1, cols=len(tasks), subplot_titles=[f"{t.name} {t.metric} {'↑' if t.higher_is_better else '↓'}" for t in tasks])
    for i, curve in enumerate(data.curves):
        colour = _RANK_COLOURS[i % len(_RANK_COLOURS)]
        for col, t in enumerate(tasks, start=1):
            fig.add_trace(go.Scatter(
                x=curve.epochs, y=curve.values[t.name], mode="lines+markers", name=f"rank {curve.rank} (trial {curve.trial})",
                legendgroup=str(curve.rank), showlegend=col == 1, line=dict(color=colour),
                hovertext=[f"rank {curve.rank} · {html.escape(curve.arch)}<br>epoch {e} (phase {ph})" for e, ph in zip(curve.epochs, curve.phases)],
                hoverinfo="text+y",
            ), row=1, col=col)
    fig.update_xaxes(title_text="epoch", dtick=1)
    fig.update_layout(title="learning curves of the top architectures (validation)", height=400)
    return fig


def drawing_figures(data: ReportData) -> list:
    out = []
    for d in data.drawings:
        dm = "" if d.delta_m is None else f" · Δm {d.delta_m:+.2f}%"
        out.append(drawing.to_figure(d.drawing, title=f"rank {d.rank} · trial {d.trial}{dm}<br><sup>{html.escape(d.drawing.title)}</sup>"))
    return out


# --------------------------------------------------------------------------- HTML
_TABLE_COLUMNS = ("rank", "trial", "family", "arch", "role", "delta_m", "pareto_front", "params", "macs", "time_s", "best_epoch", "state", "fail_reason")

_SORT_JS = """
document.querySelectorAll("table.sortable th").forEach(function (th, col) {
  th.addEventListener("click", function () {
    var table = th.closest("table"), body = table.tBodies[0];
    var ascending = th.getAttribute("aria-sort") !== "ascending";
    table.querySelectorAll("th").forEach(function (h) { h.removeAttribute("aria-sort"); });
    th.setAttribute("aria-sort", ascending ? "ascending" : "descending");
    var rows = Array.prototype.slice.call(body.rows);
    rows.sort(function (a, b) {
      var x = a.cells[col].dataset.value, y = b.cells[col].dataset.value;
      if (x === "" || y === "") { return (x === "") - (y === ""); }  // empty cells last
      var nx = Number(x), ny = Number(y), c = (isNaN(nx) || isNaN(ny)) ? x.localeCompare(y) : nx - ny;
      return ascending ? c : -c;
    });
    rows.forEach(function (r) { body.appendChild(r); });
  });
});
"""

_CSS = """
body { font-family: Helvetica, Arial, sans-serif; margin: 24px; color: #222; }
.convention { background: #f6f6f6; border-left: 4px solid #888; padding: 8px 12px; max-width: 1100px; }
table.sortable { border-collapse: collapse; font-size: 13px; }
table.sortable th { cursor: pointer; background: #eee; position: sticky; top: 0; }
table.sortable th[aria-sort=ascending]::after { content: " ▲"; }
table.sortable th[aria-sort=descending]::after { content: " ▼"; }
table.sortable td, table.sortable th { border: 1px solid #ddd; padding: 3px 7px; text-align: right; }
table.sortable td.text { text-align: left; }
tr.front td:first-child { font-weight: bold; }
tr.tied td { background: #fff6d5; }
.figures { display: flex; flex-wrap: wrap; gap: 12px; }
.figures > div { flex: 1 1 100%; }
.figures.drawings > div { flex: 0 0 auto; }
figure.prediction { margin: 0 18px 12px 0; display: inline-block; vertical-align: top; }
figure.prediction img { image-rendering: pixelated; border: 1px solid #ddd; }
figure.prediction figcaption { font-size: 12px; max-width: 260px; }
.swatch { display: inline-block; width: 10px; height: 10px; margin: 0 2px 0 6px; border: 1px solid #999; }
"""


def _header(column: str, tasks: Sequence[TaskInfo]) -> str:
    for t in tasks:
        if column == f"val.{t.name}":
            return f"{t.name} {t.metric} {'↑' if t.higher_is_better else '↓'}"
        for m, higher in t.metric_directions.items():
            if column == metric_column(t.name, m):
                return f"{t.name} {m} {'↑' if higher else '↓'}"
    return {"delta_m": "Δm (%) ↑", "pareto_front": "front", "tied_with_best": "tied", "n_seeds": "seeds", "p_vs_best": "p vs best", "time_s": "time (s)", "best_epoch": "best epoch", "fail_reason": "failure"}.get(column, column)


def _cell(value: Any, column: str) -> tuple[str, str, bool]:
    """(shown text, sort value, is text) of one table cell."""
    if value is None or (not isinstance(value, str) and pd.isna(value)):
        return "–", "", False
    if isinstance(value, (bool,)) or column in ("family", "arch", "role", "state", "fail_reason"):
        return str(value), str(value), True
    number = float(value)
    if column in ("rank", "trial", "pareto_front", "params", "macs", "best_epoch", "n_seeds"):
        return f"{int(number):,}", repr(number), False
    if column == "delta_m":
        return f"{number:+.2f}", repr(number), False
    return f"{number:.4g}", repr(number), False


def _tied_cell(row) -> tuple[str, str, bool]:
    """The table's ``tied`` cell (shown, sort value, is text): best (rank 1), tied, separated,
    or – (unranked, or untested)."""
    tied = row.get("tied_with_best")
    if pd.isna(row["rank"]) or (int(row["rank"]) != 1 and (tied is None or pd.isna(tied))):
        return "–", "", True
    shown = "best" if int(row["rank"]) == 1 else ("tied" if bool(tied) else "separated")
    return shown, shown, True


def leaderboard_html(board: pd.DataFrame, tasks: Sequence[TaskInfo]) -> str:
    """The leaderboard as an HTML table sorted by clicking a header (each cell carries its sort value).
    With seeds (``is_seeded``): each mean shown ± its standard error, the ``tied`` column and
    highlighted rows mark the tied group, and ``seeds`` and ``p vs best`` columns follow Δm."""
    seeded, tested = is_seeded(board), ties_tested(board)
    extra = [metric_column(t.name, m) for t in tasks for m in t.metrics[1:] if metric_column(t.name, m) in board]  # extra_metrics
    columns = [c for c in _TABLE_COLUMNS[:5] if c in board] + [f"val.{t.name}" for t in tasks] + extra + [c for c in _TABLE_COLUMNS[5:] if c in board]
    if tested:
        columns.insert(1, "tied_with_best")
    if seeded:
        columns[columns.index("delta_m") + 1:columns.index("delta_m") + 1] = ["n_seeds", "p_vs_best"]
    head = "".join(f'<th title="click to sort">{html.escape(_header(c, tasks))}</th>' for c in columns)
    rows = []
    for _, r in board.iterrows():
        cells = []
        for c in columns:
            shown, key, text = _tied_cell(r) if c == "tied_with_best" else _cell(r[c], c)
            se = _num(r.get(f"{c}.se")) if seeded and c != "tied_with_best" else None
            if se is not None and key:
                shown += f" ± {se:.2g}"
            cells.append(f'<td data-value="{html.escape(key)}"{" class=text" if text else ""}>{html.escape(shown)}</td>')
        marks = [m for m, on in (("front", on_front(r.get("pareto_front"))), ("tied", tested and not pd.isna(r["rank"]) and in_tied_group(r))) if on]
        row_class = f' class="{" ".join(marks)}"' if marks else ""
        rows.append(f"<tr{row_class}>{''.join(cells)}</tr>")
    return f'<table class="sortable" id="leaderboard"><thead><tr>{head}</tr></thead><tbody>{"".join(rows)}</tbody></table>'


def _figure_html(fig, div_id: str) -> str:
    return fig.to_html(full_html=False, include_plotlyjs=False, div_id=div_id, config={"displaylogo": False})


def render_html(data: ReportData) -> str:
    """The whole page as one string; plotly.js is inlined so the file opens offline."""
    from plotly.offline import get_plotlyjs

    counts = ", ".join(f"{n} {state.lower()}" for state, n in sorted(data.counts.items()))
    e = html.escape
    parts = [
        "<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
        f"<title>{REPORT_TITLE}{e(data.name)}</title>", f"<style>{_CSS}</style>",
        f'<script type="text/javascript">{get_plotlyjs()}</script>', "</head><body>",
        f"<h1>share-search report: {e(data.name)}</h1>",
        f"<p>{plural(len(data.board), 'trial')} ({e(counts)}); tasks: "
        + "; ".join(e(t.described) for t in data.tasks)
        + f"; objectives: {e(', '.join(data.objectives) or '-')}; ranked by {e(data.rank_by)}.</p>",
        f'<p class="convention" id="delta-m-convention">{e(board_statement(data.board))}</p>',
        *(f"<p><em>{e(n)}</em></p>" for n in data.notes),
        "<h2>Leaderboard</h2><p>Validation metrics; click a column header to sort. Bold ranks are on the Pareto front."
        + (" Means ± standard error over seeds." if data.seeded else "")
        + (" Highlighted rows (column “tied”) are the tied group." if tied_group(data) else "") + "</p>",
        leaderboard_html(data.board, data.tasks),
    ]
    sections = [
        ("Trade-offs between tasks", [("pareto", pareto_figure(data))]),
        ("Δm by family and cost", [("delta-m-by-family", delta_m_by_family_figure(data)), ("cost", cost_figure(data))]),
        *([("Confirmation race", [("race", race_figure(data))])] if data.board.attrs.get("race") is not None else []),
        ("Learning curves", [("curves", curves_figure(data))]),
        ("Top architectures", [(f"arch-rank-{d.rank}", f) for d, f in zip(data.drawings, drawing_figures(data))]),
    ]
    for title, figures in sections:
        shown = [(name, fig) for name, fig in figures if fig is not None]
        parts.append(f"<h2>{e(title)}</h2>")
        if not shown:
            parts.append("<p><em>Nothing to show (too few tasks or ranked trials, or no Δm).</em></p>")
            continue
        kind = "figures drawings" if title == "Top architectures" else "figures"
        parts.append(f'<div class="{kind}">' + "".join(f"<div>{_figure_html(fig, 'fig-' + name)}</div>" for name, fig in shown) + "</div>")
    if data.pictures:
        parts += pictures_html(data)
    parts += [f"<script>{_SORT_JS}</script>", "</body></html>"]
    return "\n".join(parts)


def png_size(png: bytes) -> tuple[int, int]:
    """(width, height) from a PNG's header (its IHDR chunk comes first)."""
    return struct.unpack(">II", png[16:24])


def pictures_html(data: ReportData) -> list[str]:
    """The top trials' prediction pictures, embedded as data URIs (the page stays one file);
    small pictures are shown at twice their size, pixels kept sharp."""
    e = html.escape
    tasks = {t.name: t for t in data.tasks}
    parts = [
        '<h2 id="predictions">Predictions of the top architectures</h2>',
        f"<p>The first {PICTURE_SAMPLES} validation samples, the same for every trial, predicted by each trial at the end of "
        "its training with the weights selected on validation. One row per sample: input | ground truth | prediction. "
        "Magenta: no label (ignored or invalid pixels).</p>",
    ]
    for top in data.pictures:
        dm = "" if top.delta_m is None else f" · Δm {top.delta_m:+.2f}%"
        parts.append(f'<div class="predictions" id="predictions-rank-{top.rank}"><h3>rank {top.rank} · trial {top.trial}{e(dm)} · {e(top.arch)}</h3>')
        for name, png in top.pictures.items():
            task = tasks[name]
            width, height = png_size(png)
            scale = 2 if max(width, height) <= 300 else 1
            uri = "data:image/png;base64," + base64.b64encode(png).decode("ascii")
            parts.append(
                f'<figure class="prediction" data-task="{e(name)}"><img src="{uri}" width="{width * scale}" height="{height * scale}" '
                f'alt="{e(name)}: input, ground truth and prediction of {PICTURE_SAMPLES} validation samples">'
                f"<figcaption><b>{e(name)}</b> ({e(task.type or 'dense')}): {_legend_html(task)}</figcaption></figure>"
            )
        parts.append("</div>")
    return parts


def _legend_html(task: TaskInfo) -> str:
    """What the colours mean; a segmentation's classes as swatches."""
    text = html.escape(colour_legend(task.type))
    if task.type != "segmentation" or not task.class_names:
        return text
    swatches = "".join(
        f'<span class="swatch" style="background: rgb{tuple(int(v) for v in SEGMENTATION_PALETTE[i % len(SEGMENTATION_PALETTE)])}"></span>{html.escape(str(n))}'
        for i, n in enumerate(task.class_names)
    )
    return f"{text}<br>{swatches}"


def write_report(run_dir: str | Path, out: str | Path | None = None, top: int = DEFAULT_TOP, trust_code: bool = False) -> Path:
    """Write ``run_dir/report.html`` (or ``out``) for a run folder; returns the path (``Run.report``).
    ``trust_code`` imports the spec's ``plugins``, so families they register are drawn."""
    from .run_folder import open_run

    return open_run(run_dir, trust_code=trust_code).report(out, top=top)
