"""optuna-dashboard on a real run: served on 127.0.0.1, the study read back through its API."""

import io
import json
import os
import signal
import subprocess
import sys
import threading
import urllib.request
import xml.etree.ElementTree as ET
import zipfile

import pytest
import torch

from share_search import load_model
from share_search.cli import main
from share_search.runs.dashboard import EXPORT_ARTIFACT_PREFIX, annotate_study, make_server, note_markdown
from share_search.errors import RunError
from share_search.runs.study import load_run_study

OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # never a proxy for 127.0.0.1


def get(url: str) -> bytes:
    with OPENER.open(url, timeout=60) as response:
        assert response.status == 200, url
        return response.read()


def get_json(url: str):
    return json.loads(get(url))


@pytest.fixture(scope="module")
def dashboard(small_run):
    server = make_server(small_run.run_dir, port=0)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}", server
    server.shutdown()
    server.server_close()
    thread.join(timeout=10)


@pytest.fixture(scope="module")
def study_json(dashboard):
    base, _ = dashboard
    (summary,) = get_json(f"{base}/api/studies")["study_summaries"]
    assert summary["study_name"] == "small"
    return summary["study_id"], get_json(f"{base}/api/studies/{summary['study_id']}")


def attrs_of(trial_json) -> dict:
    return {a["key"]: a["value"] for a in trial_json["user_attrs"]}


def test_served_on_loopback_only(dashboard):
    _, server = dashboard
    assert server.server_address[0] == "127.0.0.1"
    assert get_json(f"{dashboard[0]}/api/meta")  # the dashboard answers


def test_objective_names_and_per_trial_metrics_and_architecture(study_json, small_run):
    _, study = study_json
    assert study["objective_names"] == ["delta_m"]
    trials = study["trials"]
    trained = [t for t in trials if "duplicate_of" not in attrs_of(t)]  # a re-proposal is told its twin's result, off the board
    assert len(trained) == len(small_run.board)
    for t in trials:
        attrs = attrs_of(t)
        assert attrs["family"] in ("tree", "cross_stitch", "progressive")
        assert attrs["arch"].startswith(attrs["family"] + ":")
        val = json.loads(attrs["val"])
        assert {task: set(v) for task, v in val.items()} == {"digit": {"accuracy"}, "odd": {"accuracy"}, "loop": {"f1"}}
        assert float(attrs["params"]) > 0


def test_every_trial_has_its_drawing_as_an_svg_image_and_its_recipe(dashboard, study_json):
    base, _ = dashboard
    study_id, study = study_json
    for t in study["trials"]:
        by_name = {a["filename"]: a for a in t["artifacts"]}
        assert set(by_name) == {"architecture.json", "architecture.svg"}, t["number"]
        assert by_name["architecture.svg"]["mimetype"] == "image/svg+xml"
        svg = get(f"{base}/artifacts/{study_id}/{t['trial_id']}/{by_name['architecture.svg']['artifact_id']}").decode()
        root = ET.fromstring(svg)
        assert root.tag.endswith("svg")
        texts = {e.text for e in root.iter() if e.tag.endswith("text")}
        assert attrs_of(t)["arch"] in texts  # the title
        assert {"digit", "odd", "loop"} <= texts  # the heads
        recipe = get_json(f"{base}/artifacts/{study_id}/{t['trial_id']}/{by_name['architecture.json']['artifact_id']}")
        assert recipe["arch"]["family"] == attrs_of(t)["family"]


def test_study_note_lists_the_best_architectures(study_json, small_run):
    _, study = study_json
    body = study["note"]["body"]
    assert body.startswith("## Best architectures")
    ranked = small_run.board[small_run.board["rank"].notna()].sort_values("rank")
    first = ranked.iloc[0]
    assert f"| 1{'*' if first['pareto_front'] == 1 else ''} | {int(first['trial'])} | {first['arch']} |" in body
    assert "Δm = 100/T" in body  # the convention is stated where Δm is shown
    figures = {p["id"]: json.loads(p["graph_object"]) for p in study["plotly_graph_objects"]}
    assert set(figures) == {"share-search-pareto", "share-search-delta-m-by-family", "share-search-cost"}
    assert {t["type"] for t in figures["share-search-pareto"]["data"]} == {"splom"}  # three tasks


def test_exported_checkpoints_are_study_artifacts_that_load(dashboard, study_json, small_run, tmp_path):
    base, _ = dashboard
    study_id, study = study_json
    names = sorted(a["filename"] for a in study["artifacts"])
    trials = [json.loads((p / "metrics.json").read_text())["trial"] for p in small_run.exported]
    assert names == sorted(f"export-{p.name}-trial-{n}.zip" for p, n in zip(small_run.exported, trials))
    artifact = next(a for a in study["artifacts"] if a["filename"].startswith("export-rank-1-"))
    assert artifact["mimetype"] == "application/zip"
    with zipfile.ZipFile(io.BytesIO(get(f"{base}/artifacts/{study_id}/{artifact['artifact_id']}"))) as zf:
        assert {"rank-1/weights.safetensors", "rank-1/recipe.json"} <= set(zf.namelist())
        zf.extractall(tmp_path)
    model = load_model(tmp_path / "rank-1")
    with torch.no_grad():
        out = model(torch.zeros(2, 64))
    assert set(out) == {"digit", "odd", "loop"}


def test_annotating_again_replaces_the_export_artifacts(small_run):
    study, _ = load_run_study(small_run.run_dir)
    annotate_study(study, small_run.run_dir, small_run.board, small_run.exported[:1])
    live = [json.loads(v) for k, v in study._storage.get_study_system_attrs(study._study_id).items() if k.startswith("artifacts:")]
    exports = [a for a in live if a and a["filename"].startswith(EXPORT_ARTIFACT_PREFIX)]
    assert [a["filename"] for a in exports] == [f"export-rank-1-trial-{int(small_run.board.iloc[0]['trial'])}.zip"]
    files = set(os.listdir(small_run.run_dir / "artifacts"))
    assert exports[0]["artifact_id"] in files
    annotate_study(study, small_run.run_dir, small_run.board, small_run.exported)  # back as the run left it
    assert len(os.listdir(small_run.run_dir / "artifacts")) == len(files) + 1


def test_note_without_ranked_trials():
    import pandas as pd

    board = pd.DataFrame({"rank": pd.array([pd.NA], dtype="Int64"), "trial": [0], "arch": ["tree: [a]"]})
    assert "No trial finished and was ranked." in note_markdown(board, [])


def test_port_in_use_and_not_a_run_folder_are_clear_errors(dashboard, small_run, tmp_path, capsys):
    _, server = dashboard
    with pytest.raises(RunError, match=f"--port {server.server_port}: cannot listen on 127.0.0.1"):
        make_server(small_run.run_dir, server.server_port)
    assert main(["dashboard", str(tmp_path)]) == 2
    assert "is not a run folder" in capsys.readouterr().err
    assert main(["dashboard", str(small_run.run_dir), "--port", "70000"]) == 2
    assert "--port must be within 0..65535, got 70000" in capsys.readouterr().err


def test_the_command_serves_until_stopped(small_run):
    process = subprocess.Popen(
        [sys.executable, "-m", "share_search.cli", "dashboard", str(small_run.run_dir), "--port", "0"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    try:
        line = process.stdout.readline()
        assert "optuna-dashboard for" in line and "http://127.0.0.1:" in line, line
        url = line.split(" at ")[1].split()[0]
        assert url.endswith("/dashboard/")
        assert b"<html" in get(url).lower()
        assert get_json(url.replace("/dashboard/", "/api/studies"))["study_summaries"][0]["study_name"] == "small"
        process.send_signal(signal.SIGTERM)
        output, _ = process.communicate(timeout=60)  # reads what it prints, so it cannot block on a full pipe
        assert process.returncode == 0, output  # stopped cleanly
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
