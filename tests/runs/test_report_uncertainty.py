"""The report's uncertainty over seeds (``search.repeats``): error bars of ± one standard
error on the per-task trade-offs, on Δm by family and on cost against Δm, the tied group
(rank 1 and every ``tied_with_best``) circled in those figures and marked in the table; with
one seed none of it is drawn and the report says that nothing was measured.

The study is a real (in-memory) Optuna study holding hand-made records, as a run writes them."""

from __future__ import annotations

import html
import re
import statistics

import optuna
import pytest
from optuna.distributions import FloatDistribution

from share_search.runs.record import ROLE_SINGLE_TASK, Cost, SeedResult, TrialRecord
from share_search.runs.report import (
    TIED_LABEL,
    TaskInfo,
    cost_figure,
    delta_m_by_family_figure,
    pareto_figure,
    render_html,
    report_data,
)
from share_search.runs.uncertainty import TIE_ALPHA

TASKS = (TaskInfo("a", "accuracy", True), TaskInfo("b", "mae", False))
BASE = [(0.50, 2.0), (0.60, 2.5), (0.40, 1.5)]  # the single-task networks' (a, b) per seed


def _scaled(gain_a, gain_b):
    """Each seed's baseline, a up and b down by the given fractions."""
    return [(a * (1 + ga), b * (1 - gb)) for (a, b), ga, gb in zip(BASE, gain_a, gain_b)]


BEST = _scaled([0.20, 0.25, 0.18], [0.10, 0.12, 0.08])
CLOSE = _scaled([0.22, 0.20, 0.19], [0.07, 0.12, 0.09])  # tied with BEST (as tests/runs/test_uncertainty.py)
WORSE = _scaled([0.01, 0.03, 0.00], [0.02, 0.01, 0.02])  # separated from BEST
OTHER = _scaled([0.02, 0.05, 0.01], [0.01, 0.03, 0.00])  # separated too, a second architecture of its family

# trial -> (family, per-seed (a, b), role, params)
TRIALS = {
    0: ("tree", BASE, ROLE_SINGLE_TASK, 200),
    1: ("tree", WORSE, "searched", 120),
    2: ("cross_stitch", BEST, "searched", 300),
    3: ("cross_stitch", CLOSE, "searched", 250),
    4: ("tree", OTHER, "searched", 90),
}


def _record(number: int, family: str, per_seed, role: str, params: int) -> TrialRecord:
    seeds = [SeedResult(r, 10 + r, "COMPLETE", {"a": {"accuracy": a}, "b": {"mae": b}}) for r, (a, b) in enumerate(per_seed)]
    mean = {"a": {"accuracy": statistics.fmean(a for a, _ in per_seed)}, "b": {"mae": statistics.fmean(b for _, b in per_seed)}}
    return TrialRecord(number, "COMPLETE", role, family=family, arch=f"{family}: #{number}", val=mean,
                       cost=Cost(params, 2 * params, 1.0), seeds=seeds if len(per_seed) > 1 else None)


def _study(n_seeds: int) -> optuna.Study:
    study = optuna.create_study(directions=["maximize"])
    study.set_user_attr("tasks", [{"name": t.name, "metric": t.metric, "higher_is_better": t.higher_is_better} for t in TASKS])
    for number, (family, per_seed, role, params) in TRIALS.items():
        attrs = _record(number, family, per_seed[:n_seeds], role, params).to_user_attrs(TASKS)
        study.add_trial(optuna.trial.create_trial(params={"x": 0.5}, distributions={"x": FloatDistribution(0, 1)}, values=[0.0], user_attrs=attrs))
    return study


@pytest.fixture(scope="module")
def seeded():
    data = report_data(_study(3), top=1)
    return data, data.board.set_index("trial")


def _by_name(fig, name):
    return [t for t in fig.data if t.name == name]


def _assert_bars(bars, expected):
    assert bars.visible and bars.type == "data"
    assert list(bars.array) == pytest.approx(list(expected), abs=1e-12)


def test_the_tied_group_is_rank_one_and_those_tied_with_it(seeded):
    data, board = seeded
    assert data.seeded
    assert [p.trial for p in data.points][:2] == [2, 3]  # BEST, then CLOSE
    assert board.loc[3, "tied_with_best"] == True and board.loc[3, "p_vs_best"] >= TIE_ALPHA  # noqa: E712 (pandas' boolean)
    assert {p.trial for p in data.points if p.tied} == {2, 3}
    for p in data.points:
        assert p.delta_m_se == pytest.approx(board.loc[p.trial, "delta_m.se"])
        assert p.se == pytest.approx({"a": board.loc[p.trial, "val.a.se"], "b": board.loc[p.trial, "val.b.se"]})


def test_trade_offs_have_error_bars_of_each_tasks_standard_error_and_the_tied_group_circled(seeded):
    data, board = seeded
    fig = pareto_figure(data)
    for family in ("tree", "cross_stitch"):
        (trace,) = _by_name(fig, family)
        trials = [p.trial for p in data.points if p.family == family]
        assert list(trace.x) == pytest.approx(list(board.loc[trials, "val.a"]))
        _assert_bars(trace.error_x, board.loc[trials, "val.a.se"])
        _assert_bars(trace.error_y, board.loc[trials, "val.b.se"])
    (tied,) = _by_name(fig, TIED_LABEL)
    assert list(tied.x) == pytest.approx(list(board.loc[[2, 3], "val.a"])) and list(tied.y) == pytest.approx(list(board.loc[[2, 3], "val.b"]))
    assert tied.marker.symbol == "circle-open"
    assert "tied group circled" in fig.layout.title.text


def test_delta_m_by_family_has_error_bars_of_the_paired_delta_m_and_the_tied_group_circled(seeded):
    data, board = seeded
    fig = delta_m_by_family_figure(data)
    points = [t for t in fig.data if t.type == "scatter" and t.name != TIED_LABEL]
    assert [t.name for t in points] == ["cross_stitch", "tree"]
    for trace in points:
        trials = [p.trial for p in data.points if p.family == trace.name]
        assert list(trace.y) == pytest.approx(list(board.loc[trials, "delta_m"]))
        _assert_bars(trace.error_y, board.loc[trials, "delta_m.se"])
        assert len(set(trace.x)) == len(trials)  # spread beside the box, each bar on its own point
    (tied,) = _by_name(fig, TIED_LABEL)
    assert list(tied.y) == pytest.approx(list(board.loc[[2, 3], "delta_m"]))
    cross = _by_name(fig, "cross_stitch")[1]
    assert list(tied.x) == list(cross.x)  # circled where the points are drawn
    assert list(fig.layout.xaxis.ticktext) == ["cross_stitch", "tree"]


def test_cost_against_delta_m_has_error_bars_and_the_tied_group_in_both_panels(seeded):
    data, board = seeded
    fig = cost_figure(data)
    for trace in (t for t in fig.data if t.name != TIED_LABEL):
        trials = [p.trial for p in data.points if p.family == trace.name]
        _assert_bars(trace.error_y, board.loc[trials, "delta_m.se"])
    tied = _by_name(fig, TIED_LABEL)
    assert [list(t.x) for t in tied] == [list(board.loc[[2, 3], "params"]), list(board.loc[[2, 3], "macs"])]
    assert all(list(t.y) == pytest.approx(list(board.loc[[2, 3], "delta_m"])) for t in tied)


def _table(text: str) -> tuple[list[str], list[tuple[str, list[str]]]]:
    """The leaderboard's headers, and each row's class and cell texts."""
    table = re.search(r'<table class="sortable" id="leaderboard">(.*?)</table>', text, re.S).group(1)
    headers = [html.unescape(h) for h in re.findall(r"<th title=[^>]*>(.*?)</th>", table)]
    rows = [(cls, [html.unescape(c) for c in re.findall(r"<td[^>]*>(.*?)</td>", body)])
            for cls, body in re.findall(r"<tr(?: class=\"([^\"]*)\")?>(.*?)</tr>", table.split("<tbody>")[1])]
    return headers, rows


def test_the_page_marks_the_tied_group_in_the_table_and_states_the_error_bars(seeded):
    data, board = seeded
    text = render_html(data)
    headers, rows = _table(text)
    assert headers[:2] == ["rank", "tied"] and "seeds" in headers and "p vs best" in headers
    by_trial = {int(cells[headers.index("trial")].replace(",", "")): (cls.split(), cells) for cls, cells in rows}
    marks = {n: cells[headers.index("tied")] for n, (_, cells) in by_trial.items()}
    assert marks == {2: "best", 3: "tied", 1: "separated", 4: "separated", 0: "separated"}
    assert {n for n, (cls, _) in by_trial.items() if "tied" in cls} == {2, 3}
    dm = by_trial[3][1][headers.index("Δm (%) ↑")]
    assert dm == f"{board.loc[3, 'delta_m']:+.2f} ± {board.loc[3, 'delta_m.se']:.2g}"
    assert by_trial[3][1][headers.index("a accuracy ↑")] == f"{board.loc[3, 'val.a']:.4g} ± {board.loc[3, 'val.a.se']:.2g}"
    assert by_trial[3][1][headers.index("seeds")] == "3"
    assert "Error bars are ± one standard error over each architecture&#x27;s seeds" in text
    assert "The winner (trial 2" in text and "TIED" in text


def test_one_seed_draws_nothing_new_and_says_no_uncertainty_is_measured():
    data = report_data(_study(1), top=1)
    assert not data.seeded and not any(p.tied for p in data.points)
    for fig in (pareto_figure(data), delta_m_by_family_figure(data), cost_figure(data)):
        assert not _by_name(fig, TIED_LABEL)
        assert all(getattr(t, "error_y", None) is None or t.error_y.array is None for t in fig.data)
    assert [t.type for t in delta_m_by_family_figure(data).data] == ["box", "box"]  # as before search.repeats
    assert "tied group" not in pareto_figure(data).layout.title.text
    text = render_html(data)
    assert "One seed per architecture: no uncertainty is measured" in text
    headers, rows = _table(text)
    assert "tied" not in headers and "seeds" not in headers and not any("tied" in cls.split() for cls, _ in rows)
    assert " ± " not in "".join(c for _, cells in rows for c in cells)


def test_three_tasks_circle_the_tied_group_in_the_scatter_matrix():
    three = (*TASKS, TaskInfo("c", "accuracy", True))
    study = optuna.create_study(directions=["maximize"])
    study.set_user_attr("tasks", [{"name": t.name, "metric": t.metric, "higher_is_better": t.higher_is_better} for t in three])
    for number, (family, per_seed, role, params) in TRIALS.items():
        record = _record(number, family, per_seed, role, params)
        seeds = [SeedResult(s.repeat, s.seed, s.state, {**s.val, "c": {"accuracy": s.val["a"]["accuracy"]}}) for s in record.seeds]
        val = {**record.val, "c": {"accuracy": record.val["a"]["accuracy"]}}
        attrs = TrialRecord(number, "COMPLETE", role, family=family, arch=record.arch, val=val, cost=record.cost, seeds=seeds).to_user_attrs(three)
        study.add_trial(optuna.trial.create_trial(params={"x": 0.5}, distributions={"x": FloatDistribution(0, 1)}, values=[0.0], user_attrs=attrs))
    fig = pareto_figure(report_data(study, top=1))
    (tied,) = _by_name(fig, TIED_LABEL)
    assert tied.type == "splom" and list(tied.dimensions[0].values) == pytest.approx(list(report_data(study).board.set_index("trial").loc[[2, 3], "val.a"]))


def test_the_seeded_page_draws_its_error_bars_in_chromium(seeded, tmp_path):
    """The error bars and rings reach the page: a real headless Chromium draws them, no JavaScript error."""
    from .._chromium import Chromium, require_chromium

    path = tmp_path / "report.html"
    path.write_text(render_html(seeded[0]), encoding="utf-8")
    browser = Chromium(require_chromium(), width=1400, height=1000)
    try:
        tab = browser.open(path.as_uri(), settle_s=1.0)
        assert tab.load().errors == []
        bars = tab.evaluate(
            "['fig-pareto', 'fig-delta-m-by-family', 'fig-cost'].map(function (id) {"
            " return document.getElementById(id).querySelectorAll('g.errorbar path.yerror').length; })"
        )
        ranked = len(seeded[0].points)
        assert bars == [ranked, ranked, 2 * ranked], bars  # one bar per architecture and panel
        tab.close()
    finally:
        browser.close()


def test_a_pareto_ranking_draws_error_bars_but_no_tied_group():
    data = report_data(_study(3), top=1, rank_by="pareto")
    assert data.seeded and not any(p.tied for p in data.points)
    fig = pareto_figure(data)
    assert not _by_name(fig, TIED_LABEL) and fig.data[0].error_x.array is not None
    text = render_html(data)
    headers, rows = _table(text)
    assert "tied" not in headers and "seeds" in headers and not any("tied" in cls.split() for cls, _ in rows)
    assert "a Pareto ranking has no single best, so no tied group is marked" in text
