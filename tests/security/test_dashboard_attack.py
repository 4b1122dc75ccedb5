"""Issue 16, item 4: a web page must not reach the dashboard (DNS rebinding), and the
dashboard does not change the study unless started with ``--allow-writes``.

The attack: a page on attacker.example rebinds its name to 127.0.0.1, so the browser sends
``Host: attacker.example:PORT`` to the real server; here that request is sent for real,
over a socket to 127.0.0.1, to a real server on a real run folder.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import subprocess
import threading

import pytest

from share_search.runs.dashboard import make_server
from tests.runs import cli_command, cli_env
from tests.security.study_only_run import copy_run, make_run, study_names

ATTACKER = "attacker.example"


@pytest.fixture(scope="module")
def template(tmp_path_factory):
    return make_run(tmp_path_factory.mktemp("template") / "small")


@contextlib.contextmanager
def serving(run_dir, allow_writes: bool = False):
    """A real dashboard server in a thread, for the ``with`` block; gives its port."""
    server = make_server(run_dir, 0, allow_writes=True) if allow_writes else make_server(run_dir, 0)  # read-only by default
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_port
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


@pytest.fixture
def read_only(template, tmp_path):
    run_dir = copy_run(template, tmp_path / "small")
    with serving(run_dir) as port:
        yield run_dir, port


@pytest.fixture
def writable(template, tmp_path):
    run_dir = copy_run(template, tmp_path / "small")
    with serving(run_dir, allow_writes=True) as port:
        yield run_dir, port


def request(port: int, method: str, path: str, host: str, body: bytes | None = None) -> tuple[int, bytes]:
    """One HTTP request to 127.0.0.1:``port`` with the Host header given (as a browser sends it)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    try:
        headers = {"Host": host, "Content-Type": "application/json"}
        conn.request(method, path, body=body, headers=headers)
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


def study_id(port: int) -> int:
    status, body = request(port, "GET", "/api/studies", f"127.0.0.1:{port}")
    assert status == 200, body
    (summary,) = json.loads(body)["study_summaries"]
    return summary["study_id"]


def test_a_foreign_host_cannot_delete_the_study(read_only):
    run_dir, port = read_only
    sid = study_id(port)
    status, body = request(port, "DELETE", f"/api/studies/{sid}", f"{ATTACKER}:{port}")
    assert status == 421 and ATTACKER in body.decode()
    assert study_names(run_dir) == ["small"]


@pytest.mark.parametrize("host", [f"{ATTACKER}:{{port}}", ATTACKER, "127.0.0.1.attacker.example:{port}", "", "127.0.0.2:{port}"])
def test_a_foreign_host_cannot_read_the_study_either(read_only, host):
    _, port = read_only
    status, body = request(port, "GET", "/api/studies", host.format(port=port))
    assert status == 421, body
    assert b"small" not in body


def test_read_only_refuses_every_write_even_from_localhost(read_only):
    run_dir, port = read_only
    sid = study_id(port)
    writes = [
        ("DELETE", f"/api/studies/{sid}", None),
        ("POST", "/api/studies", json.dumps({"study_name": "planted", "directions": ["minimize"]}).encode()),
        ("POST", f"/api/studies/{sid}/rename", json.dumps({"study_name": "renamed"}).encode()),
        ("PUT", f"/api/studies/{sid}/note", json.dumps({"version": 1, "body": "defaced"}).encode()),
    ]
    for method, path, body in writes:
        status, answer = request(port, method, path, f"localhost:{port}", body)
        assert status == 403 and b"--allow-writes" in answer, (method, path, answer)
    assert study_names(run_dir) == ["small"]
    status, body = request(port, "GET", f"/api/studies/{sid}", f"127.0.0.1:{port}")
    assert json.loads(body)["note"]["body"] == ""


def test_the_pages_and_the_api_the_ui_reads_still_answer(read_only):
    _, port = read_only
    sid = study_id(port)
    paths = [
        "/dashboard/", f"/dashboard/studies/{sid}", "/api/meta", "/api/studies", f"/api/studies/{sid}?after=0",
        f"/api/studies/{sid}/param_importances", f"/api/studies/{sid}/plot/slice", f"/api/studies/{sid}/plot/rank", f"/csv/{sid}",
    ]
    for host in (f"127.0.0.1:{port}", f"localhost:{port}", "localhost", f"[::1]:{port}", f"LocalHost:{port}"):
        for path in paths:
            status, body = request(port, "GET", path, host)
            assert status == 200, (host, path, body[:200])
    status, body = request(port, "GET", f"/api/studies/{sid}?after=0", f"127.0.0.1:{port}")
    assert len(json.loads(body)["trials"]) == 4
    status, body = request(port, "GET", f"/api/studies/{sid}/param_importances", f"127.0.0.1:{port}")
    assert {p["name"] for p in json.loads(body)["param_importances"][0]} == {"family", "lr"}
    assert request(port, "HEAD", "/api/meta", f"127.0.0.1:{port}")[0] == 200


def test_allow_writes_lets_the_right_host_write_and_still_refuses_a_foreign_one(writable):
    run_dir, port = writable
    sid = study_id(port)
    note = json.dumps({"version": 1, "body": "kept"}).encode()
    assert request(port, "PUT", f"/api/studies/{sid}/note", f"{ATTACKER}:{port}", note)[0] == 421
    assert request(port, "DELETE", f"/api/studies/{sid}", f"{ATTACKER}:{port}")[0] == 421
    assert study_names(run_dir) == ["small"]
    status, body = request(port, "PUT", f"/api/studies/{sid}/note", f"127.0.0.1:{port}", note)
    assert status in (200, 204), body
    assert json.loads(request(port, "GET", f"/api/studies/{sid}", f"127.0.0.1:{port}")[1])["note"]["body"] == "kept"
    status, body = request(port, "DELETE", f"/api/studies/{sid}", f"127.0.0.1:{port}")
    assert status in (200, 204), body
    assert study_names(run_dir) == []


@pytest.mark.parametrize("flags,mode", [([], "read-only"), (["--allow-writes"], "writable")])
def test_the_command_says_whether_it_is_read_only(template, tmp_path, flags, mode):
    run_dir = copy_run(template, tmp_path / "small")
    process = subprocess.Popen(
        cli_command("dashboard", str(run_dir), "--port", "0", *flags), env=cli_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    try:
        line = process.stdout.readline()
        assert "optuna-dashboard for" in line and f"({mode}" in line, line
    finally:
        process.terminate()
        process.communicate(timeout=60)


def test_every_page_of_the_read_only_dashboard_works_in_a_real_browser(read_only):
    """No page of the UI needs a write: each loads with no refused request (Chromium logs
    each as a network error) and no other error."""
    from tests._chromium import Chromium, require_chromium

    binary = require_chromium()
    _, port = read_only
    sid = study_id(port)
    browser = Chromium(binary)
    try:
        pages = ("", f"studies/{sid}", f"studies/{sid}/analytics", f"studies/{sid}/trials", f"studies/{sid}/trialTable", f"studies/{sid}/note")
        tabs = browser.open_all([f"http://127.0.0.1:{port}/dashboard/{page}" for page in pages], settle_s=3.0)
        for page, tab in zip(pages, tabs):
            load = tab.load()
            assert load.errors == [], (page, load.errors)
            assert any("/api/" in u for u in load.requests), (page, load.requests)
            if page == f"studies/{sid}":  # the study's page asks for the parameter importances
                assert any(u.endswith("/param_importances") for u in load.requests), load.requests
    finally:
        browser.close()


def test_a_tunnel_on_another_local_port_is_served(read_only):
    """``ssh -L 9000:127.0.0.1:PORT`` makes the browser send ``Host: localhost:9000``: a
    loopback name, so it is this machine whatever the port (a rebinding page sends its own name)."""
    _, port = read_only
    status, _ = request(port, "GET", "/api/meta", host="localhost:9000")
    assert status == 200
