"""Per-trial resources the cluster cannot give: refused before anything runs, not a run that
waits forever; and a run whose trials wait says why."""

from __future__ import annotations

import logging
import math
import re
import subprocess
import threading
import uuid

import pytest

from share_search.errors import SpecError
from share_search.spec.model import load_spec, parse_spec
from tests.runs import cli_command, cli_env, end_marked, small_spec, write_spec

MARKER = "SHARE_SEARCH_TEST_MARKER"


@pytest.mark.parametrize("key, value", [("cpu", math.inf), ("cpu", math.nan), ("gpu", math.inf)])
def test_a_resource_that_is_not_a_finite_number_is_a_spec_error(tmp_path, key, value):
    path = write_spec(tmp_path / "spec.yaml", small_spec(search={"resources": {key: value}}))
    assert f"{key}: .{str(value)}" in path.read_text()  # the YAML a user writes: cpu: .inf
    with pytest.raises(SpecError) as err:
        load_spec(path)
    assert err.value.path == f"search.resources.{key}"
    assert "finite number" in str(err.value)


def _refusal(key: str, asked: str) -> str:
    return rf"error: search\.resources\.{key}: .* asks for {asked}, the largest node has \d+ "


@pytest.mark.parametrize("key, value, asked", [("gpu", 1, "1 GPU"), ("cpu", 4096, "4096 CPU")])
def test_a_trial_no_node_can_hold_is_refused_naming_the_key(ray_session, key, value, asked):
    """The check a run makes before anything is written, for each key, on the session's Ray."""
    from share_search.engine.search import check_resources
    from share_search.errors import RunError
    from share_search.spec.model import Resources

    with pytest.raises(RunError) as caught:
        check_resources(Resources(**{key: value}))
    assert re.match(_refusal(key, asked), f"error: {caught.value}"), str(caught.value)


def test_more_than_any_node_has_exits_2_naming_the_key(tmp_path):
    """``resources: {gpu: 1}`` on this CPU-only machine: a real ``share-search run`` with its
    own local Ray; before, its trials waited for them forever. (The same refusal for
    ``cpu``: ``test_a_trial_no_node_can_hold_is_refused_naming_the_key``.)"""
    key, value, asked = "gpu", 1, "1 GPU"
    spec = write_spec(tmp_path / "spec.yaml", small_spec(search={"resources": {key: value}}))
    run_dir = tmp_path / "run"
    marker = uuid.uuid4().hex
    try:
        done = subprocess.run(cli_command("run", str(spec), "--out", str(run_dir), "--quiet"), env=cli_env(**{MARKER: marker}), capture_output=True, text=True, timeout=300)
    finally:  # a run that hangs (as before this check) leaves its Ray behind
        end_marked(f"{MARKER}={marker}")
    assert done.returncode == 2, done.stdout[-2000:] + done.stderr[-2000:]
    error = done.stderr.strip().splitlines()
    assert len(error) == 1, done.stderr
    assert re.match(_refusal(key, asked), error[0]), error[0]
    assert not run_dir.exists()  # nothing written: nothing to resume or clean up


def test_trials_that_cannot_start_are_explained(tmp_path, ray_session, monkeypatch, capsys):
    """Every CPU of the cluster is held by another actor: the run's one trial waits and the
    run says why; the holder is let go when that warning comes, and the run then finishes."""
    import ray

    from share_search.engine import search
    from share_search.engine.runner import run_search

    monkeypatch.setattr(search, "PLACEMENT_WAIT_S", 0.5)

    @ray.remote
    class Holder:
        def ready(self):
            return True

    cpus = ray.cluster_resources()["CPU"]
    holder = Holder.options(num_cpus=cpus).remote()
    ray.get(holder.ready.remote())
    warnings: list[str] = []

    class LetGo(logging.Handler):
        def emit(self, record):
            warnings.append(record.getMessage())
            ray.kill(holder)

    handler = LetGo(logging.WARNING)
    logging.getLogger("share_search").addHandler(handler)
    no_warning = threading.Timer(180, ray.kill, args=(holder,))  # without the warning the run ends, and the test fails
    no_warning.start()
    try:
        spec = parse_spec(small_spec(search={"trials": 1, "concurrency": 1, "baselines": False, "objective": "per_task"}))
        outcome = run_search(spec, out=tmp_path / "run", show_progress=False)
    finally:
        logging.getLogger("share_search").removeHandler(handler)
        no_warning.cancel()
        ray.kill(holder)
    stalls = [w for w in warnings if w.startswith("no trial has started")]
    assert len(stalls) == 1, warnings
    assert f"each asks for 1 CPU (search.resources), and the cluster has 0 of {cpus:g} CPU free" in stalls[0]
    assert stalls[0] in capsys.readouterr().err
    assert outcome.counts["complete"] == 1, outcome.board.to_dict("records")
