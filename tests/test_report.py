"""The HTML report: plain data first (no plotly, no browser), then the figures and the page."""

import re

import numpy as np
import pandas as pd
import pytest
from plotly.offline import get_plotlyjs

from share_search.cli import main
from share_search.runs.rank import DELTA_M_CONVENTION, leaderboard
from share_search.runs.report import (
    ReportData,
    TaskInfo,
    cost_figure,
    curves_figure,
    delta_m_by_family_figure,
    leaderboard_html,
    pareto_figure,
    points_of,
    render_html,
    report_data,
    write_report,
)
from share_search.runs.study import load_run_study

TWO = (TaskInfo("a", "accuracy", True), TaskInfo("b", "mae", False))


def board_of(rows, tasks=TWO, rank_by="delta_m", failed=()):
    """A leaderboard from (trial, family, baseline, val per task, params) rows via rank.leaderboard."""
    frame = pd.DataFrame(
        [
            {"trial": n, "state": "COMPLETE", "family": fam, "arch": f"{fam}: #{n}", "role": "single_task" if base else "",
             "baseline": base, "params": p, "macs": 2 * p, **{f"val.{t.name}": v for t, v in zip(tasks, vals)}}
            for n, fam, base, vals, p in rows
        ]
        + [{"trial": n, "state": "FAIL", "family": "tree", "baseline": False, "fail_reason": reason} for n, reason in failed]
    )
    return leaderboard(frame, {t.name: t.higher_is_better for t in tasks}, rank_by=rank_by)


ROWS = [
    (0, "tree", True, (0.80, 0.7), 100),  # baseline; front: best b (lower is better)
    (1, "tree", False, (0.90, 1.2), 50),  # front: best a
    (2, "cross_stitch", False, (0.85, 0.8), 120),  # front: between the two
    (3, "progressive", False, (0.70, 1.5), 80),  # dominated by all three
]


def data_of(board, tasks=TWO) -> ReportData:
    return ReportData(
        name="t", tasks=tasks, board=board, rank_by="delta_m", counts={"COMPLETE": len(board)}, objectives=["delta_m"],
        points=points_of(board, tasks), curves=[], drawings=[], has_delta_m=bool(board["delta_m"].notna().any()),
    )


def test_points_mark_the_pareto_front_in_both_directions():
    points = points_of(board_of(ROWS), TWO)
    assert [p.rank for p in points] == [1, 2, 3, 4]
    front = {p.trial for p in points if p.front}
    assert front == {0, 1, 2}
    p = next(p for p in points if p.trial == 2)
    assert p.values == {"a": 0.85, "b": 0.8} and p.family == "cross_stitch" and p.params == 120 and p.macs == 240
    assert p.delta_m == pytest.approx(100 / 2 * ((0.85 - 0.8) / 0.8 - (0.8 - 0.7) / 0.7))


def test_two_tasks_give_a_scatter_with_the_front_as_a_line():
    fig = pareto_figure(data_of(board_of(ROWS)))
    by_name = {t.name: t for t in fig.data}
    assert set(by_name) == {"tree", "cross_stitch", "progressive", "Pareto front"}
    line = by_name["Pareto front"]
    assert list(line.x) == [0.8, 0.85, 0.9] and list(line.y) == [0.7, 0.8, 1.2]  # the front, sorted along a
    assert list(by_name["progressive"].marker.symbol) == ["circle"]
    assert list(by_name["tree"].marker.symbol) == ["diamond", "diamond"]
    assert "lower is better" in fig.layout.yaxis.title.text


def test_three_tasks_give_a_scatter_matrix_one_task_none():
    three = (TaskInfo("a", "accuracy", True), TaskInfo("b", "accuracy", True), TaskInfo("c", "mae", False))
    rows = [(0, "tree", True, (0.5, 0.5, 1.0), 10), (1, "tree", False, (0.6, 0.4, 1.0), 10), (2, "progressive", False, (0.4, 0.4, 2.0), 10)]
    fig = pareto_figure(data_of(board_of(rows, three), three))
    assert {t.type for t in fig.data} == {"splom"} and len(fig.data) == 2
    assert [d.label for d in fig.data[0].dimensions] == ["a ↑", "b ↑", "c ↓"]
    one = (TaskInfo("a", "accuracy", True),)
    assert pareto_figure(data_of(board_of([(0, "tree", True, (0.5,), 1), (1, "tree", False, (0.6,), 1)], one), one)) is None


def test_delta_m_and_cost_figures_and_their_absence_without_a_baseline():
    data = data_of(board_of(ROWS))
    box = delta_m_by_family_figure(data)
    assert sorted(t.name for t in box.data) == ["cross_stitch", "progressive", "tree"]
    assert sorted(box.data[[t.name for t in box.data].index("tree")].y) == pytest.approx(sorted(p.delta_m for p in data.points if p.family == "tree"))
    cost = cost_figure(data)
    assert len(cost.data) == 6 and {cost.layout.xaxis.type, cost.layout.xaxis2.type} == {"log"}
    no_baseline = [(n, f, False, v, p) for n, f, _, v, p in ROWS]
    empty = data_of(board_of(no_baseline, rank_by="pareto"))
    assert not empty.has_delta_m and delta_m_by_family_figure(empty) is None and cost_figure(empty) is None
    assert curves_figure(empty) is None


def test_leaderboard_table_carries_sort_values_and_states_directions():
    board = board_of(ROWS, failed=[(9, "boom <b>")])
    text = leaderboard_html(board, TWO)
    assert text.count("<tr") == 1 + len(board)
    headers = re.findall(r"<th title=[^>]*>(.*?)</th>", text)
    assert headers[:5] == ["rank", "trial", "family", "arch", "role"]
    assert "a accuracy ↑" in headers and "b mae ↓" in headers and "Δm (%) ↑" in headers
    assert "boom &lt;b&gt;" in text  # escaped
    first = re.search(r"<tbody><tr[^>]*>(.*?)</tr>", text).group(1)
    assert re.findall(r'data-value="([^"]*)"', first)[:2] == ["1.0", "0.0"]  # rank 1 is trial 0
    failed = re.findall(r"<tr>(.*?)</tr>", text)[-1]
    assert 'data-value=""' in failed  # empty cells sort last


# --------------------------------------------------------------------------- a real run
@pytest.fixture(scope="module")
def real(small_run):
    study, _ = load_run_study(small_run.run_dir)
    return study, report_data(study, top=3)


def test_report_data_from_the_study(real, small_run):
    study, data = real
    assert [t.name for t in data.tasks] == ["digit", "odd", "loop"]
    assert [(t.metric, t.higher_is_better) for t in data.tasks] == [("accuracy", True), ("accuracy", True), ("f1", True)]
    ranked = small_run.board[small_run.board["rank"].notna()]
    assert len(data.points) == len(ranked) and data.has_delta_m
    assert {p.trial for p in data.front} == set(ranked.loc[ranked["pareto_front"] == 1, "trial"])
    assert [c.rank for c in data.curves] == [1, 2, 3] and [d.rank for d in data.drawings] == [1, 2, 3]
    for curve in data.curves:
        history = study.trials[curve.trial].user_attrs["history"]
        assert curve.epochs == [row["epoch"] for row in history]
        assert curve.values["odd"] == pytest.approx([row["odd.accuracy"] for row in history])
        assert curve.values["loop"] == pytest.approx([row["loop.f1"] for row in history])
    for d in data.drawings:
        assert d.drawing.title == study.trials[d.trial].user_attrs["arch"]
        assert d.drawing.row_labels[-1] == "heads" and len(d.drawing.row_labels) == 2 + 3  # mlp with 3 stages


def test_figures_of_the_real_run(real):
    _, data = real
    assert pareto_figure(data).data[0].type == "splom"
    curves = curves_figure(data)
    assert len(curves.data) == len(data.curves) * 3  # one line per architecture and task
    assert np.isfinite([v for t in curves.data for v in t.y if v is not None]).all()


def test_write_report_is_one_self_contained_file(small_run, tmp_path):
    path = write_report(small_run.run_dir, tmp_path / "r.html", top=2)
    text = path.read_text(encoding="utf-8")
    assert text.startswith("<!DOCTYPE html>") and text.rstrip().endswith("</html>")
    assert re.search(r"<script[^>]+src=", text) is None and get_plotlyjs()[-2000:] in text  # plotly.js is inlined
    assert DELTA_M_CONVENTION.replace("'", "&#x27;") in text
    ids = re.findall(r'<div id="(fig-[^"]+)"', text)
    assert ids == ["fig-pareto", "fig-delta-m-by-family", "fig-cost", "fig-curves", "fig-arch-rank-1", "fig-arch-rank-2"]
    assert text.count('<tr') == 1 + len(small_run.board)


def test_report_command(small_run, tmp_path, capsys):
    assert main(["report", str(small_run.run_dir)]) == 0
    assert (small_run.run_dir / "report.html").is_file()
    assert main(["report", str(small_run.run_dir), "--out", str(tmp_path / "x" / "r.html"), "--top", "1"]) == 0
    assert "wrote" in capsys.readouterr().out and (tmp_path / "x" / "r.html").is_file()
    assert main(["report", str(tmp_path / "nothing")]) == 2
    assert "no such run folder" in capsys.readouterr().err
    assert main(["report", str(small_run.run_dir), "--top", "0"]) == 2
    assert "--top must be >= 1, got 0" in capsys.readouterr().err


def test_a_hand_made_study_with_two_tasks_and_an_undrawable_family():
    """report_data reads only the study: any Optuna study with share-search's attributes works."""
    import json

    import optuna
    from optuna.distributions import FloatDistribution

    study = optuna.create_study(directions=["maximize"])
    study.set_user_attr("tasks", [{"name": "a", "metric": "accuracy", "higher_is_better": True}, {"name": "b", "metric": "mae", "higher_is_better": False}])
    tree = {"family": "tree", "stages": [[["a"], ["b"]], [["a"], ["b"]]]}
    for n, (arch, role, val, dm) in enumerate([(tree, "single_task", (0.8, 1.0), 0.0), ({"family": "custom", "k": 1}, None, (0.9, 0.9), 11.25)]):
        attrs = {"family": arch["family"], "arch": f"{arch['family']}: #{n}", "arch_json": json.dumps(arch), "params": 10, "macs": 20,
                 "val": {"a": {"accuracy": val[0]}, "b": {"mae": val[1]}}, "delta_m": dm,
                 "history": [{"epoch": 1, "phase": "all", "a.accuracy": val[0], "b.mae": val[1]}]}
        if role:
            attrs["role"] = role
        study.add_trial(optuna.trial.create_trial(params={"x": 0.5}, distributions={"x": FloatDistribution(0, 1)}, values=[dm], user_attrs=attrs))
    data = report_data(study, top=2)
    assert [p.trial for p in data.points] == [1, 0] and data.points[0].delta_m == pytest.approx(100 / 2 * (0.1 / 0.8 + 0.1 / 1.0))
    assert [d.trial for d in data.drawings] == [0]
    assert any("rank 1 (trial 1) is not drawn" in n and "custom" in n for n in data.notes)
    assert [c.values for c in data.curves] == [{"a": [0.9], "b": [0.9]}, {"a": [0.8], "b": [1.0]}]
    assert pareto_figure(data).data[0].type == "scatter"
    text = render_html(data)
    assert "rank 1 (trial 1) is not drawn" in text and 'id="fig-arch-rank-2"' in text
