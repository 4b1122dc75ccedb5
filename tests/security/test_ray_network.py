"""Who can reach the Ray that a local run (no ``--address``) starts.

A real Ray, started by ``start_ray(None)`` as ``share-search run`` does, in its own process
with its own HOME (so Ray writes a fresh token there, not in ~/.ray). Then:

* every TCP socket that the run's processes (the driver, gcs_server, raylet, the runtime-env
  agent, the workers) listen on must be on loopback. No exception is allowed: on Ray 2.60
  every one of them can be bound to 127.0.0.1 (``search._loopback_only``), so none has to
  rely on the token alone. Measured before that change: gcs_server, raylet (2 ports), the
  driver and each worker on ``*`` (every interface), the runtime-env agent on the
  machine's address.
* Ray's token authentication is on (Ray 2.60 turns it on for a local cluster; nothing in
  share-search may turn it off), which also keeps other users of this machine out: a client
  over 127.0.0.1 without the token, or with a wrong one, is refused by the GCS (the gRPC
  server every client joins through) and by the runtime-env agent (HTTP), while the same
  client with the cluster's token is served. The raylet's and workers' gRPC ports are not
  probed here (that needs a raw gRPC client, which this environment lacks); they are on
  loopback like the rest.

Traffic goes to 127.0.0.1 only.
"""

from __future__ import annotations

import ipaddress
import json
import os
import secrets
import subprocess
import sys
import urllib.error
import urllib.request

import psutil
import pytest

from tests.runs import REPO

AUTH_VARS = ("RAY_AUTH_MODE", "RAY_AUTH_TOKEN", "RAY_AUTH_TOKEN_PATH")

# the driver of a local run: start Ray as share-search does, run one task so that a worker
# process exists (a trial runs in one), report the ports, and hold Ray until stdin closes
DRIVER = """
import json, os, sys
import ray
from share_search.engine.search import start_ray

start_ray(None)
ray.get(ray.remote(lambda: 1).remote())
node = ray._private.worker._global_node
print(json.dumps({"gcs": node.gcs_address, "agent_port": node.runtime_env_agent_port, "auth_mode": os.environ.get("RAY_AUTH_MODE")}), flush=True)
sys.stdin.read()
ray.shutdown()
"""

# a client of the GCS, as any Ray client starts: its answer says whether it was served
GCS_CLIENT = """
import sys
from ray._raylet import GcsClient

try:
    nodes = GcsClient(address=sys.argv[1]).get_all_node_info(timeout=30)
except Exception as exc:
    print("refused:", type(exc).__name__, exc)
else:
    print("served:", len(nodes), "node(s)")
"""


def _env(home, **extra: str) -> dict[str, str]:
    """This environment without any Ray authentication setting, HOME moved to ``home``."""
    env = {k: v for k, v in os.environ.items() if k not in AUTH_VARS}
    env.update(HOME=str(home), PYTHONPATH=os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])), **extra)
    return env


@pytest.fixture(scope="module")
def local_ray(tmp_path_factory):
    """A local run's Ray; yields (its processes, GCS port, runtime-env agent port, token, auth mode)."""
    home = tmp_path_factory.mktemp("ray-home")
    driver = subprocess.Popen([sys.executable, "-c", DRIVER], env=_env(home), stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    processes: list[psutil.Process] = []
    try:
        line = driver.stdout.readline()
        assert line, f"the driver ended without starting Ray (exit {driver.wait()})"
        info = json.loads(line)
        root = psutil.Process(driver.pid)
        processes = [root, *root.children(recursive=True)]
        token = (home / ".ray" / "auth_token").read_text().strip()
        yield processes, int(info["gcs"].rpartition(":")[2]), int(info["agent_port"]), token, info["auth_mode"]
    finally:
        driver.stdin.close()
        try:
            driver.wait(timeout=120)
        finally:
            for p in processes:  # only the processes this fixture's driver started
                try:
                    p.kill()
                except psutil.Error:
                    pass


def _is_loopback(ip: str) -> bool:
    address = ipaddress.ip_address(ip.split("%")[0])
    return (getattr(address, "ipv4_mapped", None) or address).is_loopback


def _listening(processes: list[psutil.Process]) -> list[tuple[str, int, str]]:
    found = []
    for p in processes:
        for conn in p.net_connections(kind="inet"):
            if conn.status == psutil.CONN_LISTEN:
                found.append((conn.laddr.ip, conn.laddr.port, p.name()))
    return found


def test_a_local_run_listens_on_loopback_only(local_ray):
    processes, gcs_port, agent_port, _, _ = local_ray
    listening = _listening(processes)
    names = {name for _, _, name in listening}
    # the check sees the servers it is about
    assert {gcs_port, agent_port} <= {port for _, port, _ in listening}, listening
    assert {"gcs_server", "raylet"} <= names and any(n.startswith("ray::") for n in names), names
    exposed = [(ip, port, name) for ip, port, name in listening if not _is_loopback(ip)]
    assert not exposed, f"listening beyond loopback: {exposed}"


def _gcs_client(gcs_port: int, home, **env: str) -> str:
    done = subprocess.run([sys.executable, "-c", GCS_CLIENT, f"127.0.0.1:{gcs_port}"], env=_env(home, **env), capture_output=True, text=True, timeout=120)
    return done.stdout.strip() or done.stderr[-2000:]


def test_the_gcs_refuses_a_client_without_the_token(local_ray, tmp_path):
    _, gcs_port, _, token, auth_mode = local_ray
    assert auth_mode == "token"  # Ray's default for a local cluster, left on by share-search
    no_token = _gcs_client(gcs_port, tmp_path, RAY_AUTH_MODE="disabled")  # sends no token
    wrong_token = _gcs_client(gcs_port, tmp_path, RAY_AUTH_MODE="token", RAY_AUTH_TOKEN=secrets.token_hex(32))
    for answer in (no_token, wrong_token):
        assert answer.startswith("refused:") and "Authentication token is missing or incorrect" in answer, answer
    # the same client with the cluster's token is served: the refusals above are the token's
    assert _gcs_client(gcs_port, tmp_path, RAY_AUTH_MODE="token", RAY_AUTH_TOKEN=token) == "served: 1 node(s)"


def _agent_status(agent_port: int, authorization: str | None) -> int:
    request = urllib.request.Request(f"http://127.0.0.1:{agent_port}/get_runtime_envs_info", data=b"", method="POST")
    if authorization:
        request.add_header("Authorization", authorization)
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(request, timeout=30) as reply:
            return reply.status
    except urllib.error.HTTPError as exc:
        return exc.code


def test_the_runtime_env_agent_refuses_a_request_without_the_token(local_ray):
    _, _, agent_port, token, _ = local_ray
    assert _agent_status(agent_port, None) == 401
    assert _agent_status(agent_port, f"Bearer {secrets.token_hex(32)}") == 403
    assert _agent_status(agent_port, f"Bearer {token}") == 200
