"""Issue 16, item 5: a run folder from someone else must not run code on `leaderboard`,
`report` or `dashboard`, and `export` says it reloads data and runs nothing unasked.

The attack: a real run folder whose ``spec.resolved.yaml`` names ``evilmod:boom`` as its data
source or backbone, ``evilmod`` importable (in the current folder and on ``sys.path``); the
module writes a marker file when it is imported or called.
"""

from __future__ import annotations

import json
import sys
import threading
import urllib.request

import pytest

from share_search.cli import main
from share_search.runs.dashboard import make_server
from tests.security.study_only_run import copy_run, make_run, tamper

EVIL = '''
from pathlib import Path

MARKER = Path(__file__).with_name("evil-ran")
MARKER.write_text("imported")


def boom(*args, **kwargs):
    MARKER.write_text("called")
    raise SystemExit("evilmod ran")
'''
TAMPERED = ["data.source", "backbone.name"]


@pytest.fixture(scope="module")
def template(tmp_path_factory):
    return make_run(tmp_path_factory.mktemp("template") / "small")


@pytest.fixture
def evil(tmp_path, monkeypatch):
    """``evilmod`` importable from the current folder and ``sys.path``; returns its marker file."""
    (tmp_path / "evilmod.py").write_text(EVIL)
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "evilmod", raising=False)
    return tmp_path / "evil-ran"


@pytest.fixture(params=TAMPERED)
def tampered(request, template, tmp_path, evil):
    run_dir = copy_run(template, tmp_path / "small")
    tamper(run_dir, request.param, "evilmod:boom")
    return run_dir


def test_leaderboard_reads_the_study_and_runs_nothing_the_folder_names(tampered, evil, capsys):
    assert main(["leaderboard", str(tampered)]) == 0
    out = capsys.readouterr().out
    assert "leaderboard (validation metrics)" in out and "cross_stitch: lr 0.03" in out
    assert main(["leaderboard", str(tampered), "--format", "csv", "--rank-by", "odd"]) == 0
    rows = capsys.readouterr().out.splitlines()
    assert rows[0].startswith("rank,trial,") and "val.odd" in rows[0] and len(rows) == 5
    assert not evil.exists()


def test_report_runs_nothing_the_folder_names(tampered, evil, capsys):
    assert main(["report", str(tampered)]) == 0
    assert f"wrote {tampered / 'report.html'}" in capsys.readouterr().out
    assert "cross_stitch: lr 0.03" in (tampered / "report.html").read_text()
    assert not evil.exists()


def test_dashboard_runs_nothing_the_folder_names(tampered, evil):
    server = make_server(tampered, 0)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        with opener.open(f"http://127.0.0.1:{server.server_port}/api/studies", timeout=60) as response:
            assert response.status == 200
            assert [s["study_name"] for s in json.load(response)["study_summaries"]] == ["small"]
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)
    assert not evil.exists()


def test_export_says_what_it_reloads_and_runs_no_code_unless_trusted(tampered, evil, capsys):
    assert main(["export", str(tampered)]) == 2
    captured = capsys.readouterr()
    assert f"export reloads the data and backbone named in {tampered / 'spec.resolved.yaml'}" in captured.out
    assert "'evilmod:boom'" in captured.out
    err = captured.err.strip()
    assert err.startswith("error: ") and "\n" not in err and "names code that export would import and run" in err and "evilmod:boom" in err and "--trust-code" in err
    assert not evil.exists()
    assert not (tampered / "export").exists()


def test_export_with_trust_code_runs_it(tampered, evil, capsys):
    """The gate, not a broken loader, kept the code from running above."""
    with pytest.raises(SystemExit, match="evilmod ran"):
        main(["export", str(tampered), "--trust-code"])
    assert "export reloads the data and backbone" in capsys.readouterr().out
    assert evil.read_text() == "called"


def test_export_of_built_in_data_and_backbone_needs_no_trust(template, tmp_path, capsys):
    run_dir = copy_run(template, tmp_path / "small")
    assert main(["export", str(run_dir)]) == 2  # this run kept no checkpoints; it got that far
    captured = capsys.readouterr()
    assert "data.source 'digits', backbone.name 'mlp'" in captured.out
    assert "no checkpoint for trial" in captured.err and "--trust-code" not in captured.err
