"""What a run tells its user: run.log, the leaderboard table, the progress line, counts, the report.

One tiny real search (digits, 300 samples, 1 epoch, 3 trials: the two references and one
sampled trial that fails on purpose), its report, then a resume to 4 trials; its output
goes to a pipe, as when a run is logged to a file.
"""

from __future__ import annotations

import contextlib
import io
import re

import pytest

from share_search.cli import main
from tests.runs import small_spec, write_spec

BACKBONE = "tests.fault_backbones:faulty"
REFERENCE_BATCH = 28  # the midpoint of the batch-size range: what the reference trials train with
FAULTS = {b: "raise" for b in range(24, 33) if b != REFERENCE_BATCH}  # every sampled batch size but the references' fails


def piped(argv: list[str]) -> tuple[int, str]:
    """``main(argv)`` with standard output going to a pipe-like buffer (not a terminal)."""
    out = io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(out):
        code = main(argv)
    return code, out.getvalue()


@pytest.fixture(scope="module")
def run(tmp_path_factory, ray_session):
    folder = tmp_path_factory.mktemp("run_output")
    spec = small_spec(
        backbone={"name": BACKBONE, "options": {"widths": [16], "faults": FAULTS}},
        train={"batch_size": {"low": 24, "high": 32}},
        search={"trials": 3, "concurrency": 1, "export_top": 1},
    )
    path = str(write_spec(folder / "output.yaml", spec))
    out = folder / "run"
    first = piped(["run", path, "--out", str(out)])
    log_after_first = (out / "run.log").read_text()
    report = piped(["report", str(out)])
    report_before = (out / "report.html").read_text()
    resumed = piped(["run", path, "--out", str(out), "--resume", "--trials", "4"])
    board = piped(["leaderboard", str(out)])
    return {
        "out": out, "first": first, "log_after_first": log_after_first, "report": report,
        "report_before": report_before, "resumed": resumed, "board": board,
    }  # fmt: skip


def test_the_runs_succeed(run):
    for step in ("first", "report", "resumed", "board"):
        code, printed = run[step]
        assert code == 0, (step, printed)


def test_run_log_says_what_happened(run):
    text = run["log_after_first"]
    assert "started run 'small'" in text
    assert "phase references: 2 trials" in text and "phase search: 1 trial\n" in text.replace("\r", "")
    assert re.search(r"trial 0 \(single_task\): tree.* complete in [\d.]+ s: digit accuracy [\d.]+, odd accuracy [\d.]+", text)
    assert re.search(r"trial 1 \(hard_sharing\): tree.* complete in", text)
    assert re.search(r"trial 2: cross_stitch.* failed \(origin: user\): .*RuntimeError: planted fault for batch size", text)
    assert "leaderboard: 3 trials, 2 ranked" in text
    assert re.search(r"exported rank 1 \(trial \d\) to .*export/rank-1", text)
    resumed_log = (run["out"] / "run.log").read_text()
    assert resumed_log.startswith(text) and "resumed run 'small'" in resumed_log  # appended, not replaced
    assert "leaderboard: 4 trials" in resumed_log


def test_the_table_shows_the_references_roles(run):
    printed = run["first"][1]
    rows = [line for line in printed.splitlines() if "│" in line]
    assert any("tree (single-task baseline)" in r for r in rows), printed
    assert any("tree (hard-sharing reference)" in r for r in rows), printed
    assert any("tree (single-task baseline)" in r for r in run["board"][1].splitlines())


def test_the_progress_line_is_whole_when_piped(run):
    printed = run["first"][1]
    bars = [line for line in printed.splitlines() if line.startswith("trials ━")]
    assert len(bars) == 2, printed  # one per phase: references, then search
    for bar in bars:
        assert "…" not in bar and re.search(r"\d:\d\d:\d\d left \d:\d\d:\d\d$", bar.rstrip()), bar


def test_counts_are_pluralised(run):
    from share_search.text import plural

    for step in ("first", "resumed"):
        printed = run[step][1]
        assert not re.search(r"\b1 (trials|reference trials)\b", printed), printed
    assert "search: 1 trial\n" in run["first"][1]
    assert "references: 2 reference trials" in run["first"][1]
    assert (plural(1, "trial"), plural(2, "trial"), plural(1, "class", "classes")) == ("1 trial", "2 trials", "1 class")


def test_a_resume_rewrites_the_report(run):
    before, after = run["report_before"], (run["out"] / "report.html").read_text()
    assert "<p>3 trials (" in before
    assert "<p>4 trials (" in after


def test_a_report_html_of_another_origin_is_left_alone(tmp_path):
    """The run rewrites only a report that share-search wrote; this needs no run: the check
    comes before the study is read."""
    from share_search.engine.runner import _refresh_report

    mine = tmp_path / "report.html"
    mine.write_text("<html><title>my own notes</title></html>")
    _refresh_report(None, tmp_path, board=None)
    assert mine.read_text() == "<html><title>my own notes</title></html>"
