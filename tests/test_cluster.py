"""A real two-node Ray cluster on this machine: ``ray start --head`` plus a second
``ray start --address`` node with its own resources, and a search that joins it with
``--address``. Trials must run on both nodes and leave results and checkpoints in the run
folder.

The cluster's processes carry a marker in their environment and are ended by it (never
``ray stop``, which would end every Ray on the machine, other tests' included).
"""

import json
import shutil
import socket
import subprocess
import sys
import tempfile
import uuid

import pandas as pd
import pytest
from optuna.trial import TrialState

from share_search import load_model
from tests.runs import alive_marked, cli_command, cli_env, end_marked, small_spec, study_of, write_spec

MARKER = "SHARE_SEARCH_TEST_MARKER"
TRIALS = 2  # the two reference trials, trained at once: one CPU per node puts one on each


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _node_ports() -> list[str]:
    """Ports of a node's agents: free ones, so a second node (or another test's Ray) never clashes."""
    return [
        "--dashboard-agent-listen-port", str(_free_port()), "--dashboard-agent-grpc-port", str(_free_port()),
        "--metrics-export-port", str(_free_port()), "--runtime-env-agent-port", str(_free_port()),
    ]


def _ray(*args: str, env: dict, log) -> None:
    """Run the ``ray`` command line of this interpreter (output to a file: its daemons keep pipes open)."""
    cmd = [sys.executable, "-m", "ray.scripts.scripts", *args, "--num-cpus", "1", "--object-store-memory", str(100 * 2**20), "--disable-usage-stats", *_node_ports()]
    code = subprocess.run(cmd, env=env, stdout=log, stderr=subprocess.STDOUT, timeout=180).returncode
    assert code == 0, f"{' '.join(args[:2])} failed (exit {code}); see {log.name}"


@pytest.fixture
def cluster(tmp_path):
    """Head (1 CPU) and a second node (1 CPU, resource ``node2``), on 127.0.0.1; yields
    (address, environment, node ids)."""
    marker = uuid.uuid4().hex
    # token authentication is for clusters across machines; this one stays on 127.0.0.1
    env = cli_env(**{MARKER: marker, "RAY_AUTH_MODE": "disabled"})
    temp_dir = tempfile.mkdtemp(prefix="ssray-", dir="/tmp")  # short: Ray's socket paths must fit 107 bytes
    address = f"127.0.0.1:{_free_port()}"
    log = open(tmp_path / "ray-start.log", "w")
    try:
        _ray("start", "--head", "--node-ip-address", "127.0.0.1", "--port", address.split(":")[1], "--include-dashboard", "false", "--temp-dir", temp_dir, env=env, log=log)
        _ray("start", "--address", address, "--node-ip-address", "127.0.0.1", "--resources", json.dumps({"node2": 1}), env=env, log=log)
        probe = (
            "import json, time, ray\n"
            f"ray.init(address={address!r}, log_to_driver=False)\n"
            "for _ in range(300):\n"
            "    nodes = [n for n in ray.nodes() if n['Alive']]\n"
            "    if len(nodes) == 2: break\n"
            "    time.sleep(0.2)\n"
            "print(json.dumps({n['NodeID']: n['Resources'] for n in nodes}))\n"
        )
        out = subprocess.run([sys.executable, "-c", probe], env=env, capture_output=True, text=True, timeout=180)
        nodes = json.loads(out.stdout.strip().splitlines()[-1])
        assert len(nodes) == 2 and sum("node2" in r for r in nodes.values()) == 1, nodes
        yield address, env, set(nodes)
    finally:
        log.close()
        end_marked(f"{MARKER}={marker}")
        assert not alive_marked(f"{MARKER}={marker}", wait=10)
        shutil.rmtree(temp_dir, ignore_errors=True)


def test_a_search_runs_its_trials_on_both_nodes(tmp_path, cluster):
    address, env, node_ids = cluster
    # 0.5 s per training batch: a trial outlasts the start of the other node's worker, so
    # the second trial cannot fall back on the first one's (reused) worker
    backbone = {"name": "tests.fault_backbones:faulty", "options": {"widths": [16], "delay": 0.5}}
    spec = write_spec(tmp_path / "cluster.yaml", small_spec(backbone=backbone, families={"tree": {}}, search={"trials": TRIALS, "concurrency": 2}))
    run_dir = tmp_path / "run"
    # the driver is its own process: this test process may already hold a local Ray
    done = subprocess.run(
        cli_command("run", str(spec), "--out", str(run_dir), "--address", address, "--quiet"),
        env=env, capture_output=True, text=True, timeout=600,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]

    trials = study_of(run_dir).get_trials()
    assert [t.state for t in trials] == [TrialState.COMPLETE] * TRIALS
    ran_on = {t.user_attrs["node"] for t in trials}
    assert ran_on == node_ids  # both nodes trained

    checkpoints = sorted(run_dir.glob("ray/*/*/checkpoint_*/weights.safetensors"))
    assert len(checkpoints) == TRIALS  # one kept per trial, written from either node
    assert len(pd.read_csv(run_dir / "leaderboard.csv")) == TRIALS
    model = load_model(run_dir / "export" / "rank-1", trust_code=True)  # its backbone is the test's own module:function
    assert set(model.recipe["spec"]["tasks"]) == {"digit", "odd"}


def test_the_local_ray_serves_no_dashboard(ray_session):
    """A plain run starts Ray without its dashboard (``start_ray``); nothing to bind anywhere."""
    import ray

    assert ray.is_initialized()
    assert ray._private.worker.get_dashboard_url() == ""
