"""Helpers for tests that run real searches: small specs, their studies, the processes they start."""

from __future__ import annotations

import copy
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

import optuna
import yaml

REPO = Path(__file__).resolve().parents[2]

# digits, two tasks, a one-stage MLP, one epoch: a trial trains in well under a second
SMALL = {
    "name": "small",
    "seed": 0,
    "data": {"source": "digits", "max_samples": 300},
    "tasks": {"digit": {"metric": "accuracy"}, "odd": {"metric": "accuracy"}},
    "backbone": {"name": "mlp", "options": {"widths": [16]}},
    "families": {"tree": {}, "cross_stitch": {}},
    "train": {"lr": 0.01, "epochs": 1, "batch_size": 32},
    "search": {"sampler": "random", "trials": 4, "concurrency": 2, "export_top": 1},
}


def small_spec(**sections: Any) -> dict[str, Any]:
    """SMALL with whole top-level values replaced, and ``search``/``train`` entries merged."""
    spec = copy.deepcopy(SMALL)
    for key, value in sections.items():
        if key in ("search", "train", "data") and isinstance(value, dict):
            spec[key].update(value)
        else:
            spec[key] = value
    return spec


def write_spec(path: Path, spec: dict[str, Any]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    return path


def study_of(run_dir: Path, name: str = "small", storage: str | None = None) -> optuna.Study:
    url = storage or f"sqlite:///{Path(run_dir).resolve() / 'study.db'}"
    return optuna.load_study(study_name=name, storage=url)


def cli_env(**extra: str) -> dict[str, str]:
    """Environment for a ``python -m share_search.cli`` subprocess: the repo importable, quiet."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    env.update(extra)
    return env


def cli_command(*args: str) -> list[str]:
    return [sys.executable, "-m", "share_search.cli", *args]


# --------------------------------------------------------------------------- processes
@contextmanager
def running_driver(args: list[str], log_path: Path, marker_env: dict[str, str]) -> Iterator[subprocess.Popen]:
    """``share-search ARGS`` in its own process group, output to ``log_path``, ``marker_env``
    in its environment; killed on leaving if still running. It starts with SIGINT at its
    default, as from a terminal: a test run that is itself a background job of a
    non-interactive shell ignores SIGINT, and a child inherits an ignored signal (a Python
    handler is reset to the default on exec instead)."""
    with open(log_path, "w") as log:
        previous = signal.signal(signal.SIGINT, signal.default_int_handler)
        try:
            proc = subprocess.Popen(cli_command(*args), env=cli_env(**marker_env), stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        finally:
            signal.signal(signal.SIGINT, previous)
        try:
            yield proc
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()


def marked_pids(marker: str) -> list[int]:
    """Processes whose environment holds ``marker`` (a variable only this test set): the
    driver it started and every Ray process that driver started, on this machine."""
    needle = marker.encode()
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            environ = (entry / "environ").read_bytes()
        except OSError:
            continue
        if needle in environ.split(b"\0"):
            found.append(int(entry.name))
    return found


def alive_marked(marker: str, wait: float = 0.0) -> list[int]:
    """Live processes carrying ``marker``, after waiting up to ``wait`` seconds for them to end."""
    deadline = time.monotonic() + wait
    while True:
        pids = [p for p in marked_pids(marker) if _alive(p)]
        if not pids or time.monotonic() >= deadline:
            return pids
        time.sleep(0.2)


def end_marked(marker: str, timeout: float = 30.0) -> list[int]:
    """SIGKILL the processes carrying ``marker`` (and only those); returns the pids ended."""
    ended: list[int] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        pids = [p for p in marked_pids(marker) if _alive(p)]
        if not pids:
            return ended
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
                ended.append(pid)
            except ProcessLookupError:
                pass
        time.sleep(0.2)
    return ended


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"  # a zombie is already dead, only not yet reaped


# --------------------------------------------------------------------------- what a refused command left
def one_line_error(capsys, *words: str) -> str:
    """The command's stderr: one ``error:`` line, no traceback, holding every one of ``words``."""
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "\n" not in err and "Traceback" not in err, err
    for w in words:
        assert w in err, err
    return err


def file_tree(folder: Path) -> dict[str, bytes | None]:
    """Every path under ``folder`` with its bytes (None for a folder): equal means untouched."""
    return {str(p.relative_to(folder)): (p.read_bytes() if p.is_file() else None) for p in sorted(folder.rglob("*"))}


def wait_for_a_finished_seed(proc: subprocess.Popen, db: Path, min_repeat: int = 0, timeout: float = 600.0) -> None:
    """Block until a RUNNING trial of the SQLite study ``db`` records a COMPLETE seed of repeat
    ``min_repeat`` or later (``search.repeats`` and the race store seeds as they end), so a
    test can stop the driver with that seed kept and others unfinished."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, "the driver ended before it could be stopped"
        try:
            with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5) as con:
                rows = con.execute(
                    "SELECT a.value_json FROM trial_user_attributes a JOIN trials t ON a.trial_id = t.trial_id "
                    "WHERE a.key = 'seeds' AND t.state = 'RUNNING'"
                ).fetchall()
        except sqlite3.OperationalError:
            rows = []
        if any(s["state"] == "COMPLETE" and s["repeat"] >= min_repeat for (value,) in rows for s in json.loads(value)):
            return
        time.sleep(0.5)
    raise AssertionError(f"no running trial with a finished seed of repeat >= {min_repeat} after {timeout} s")


def ray_trial_folders(phase: Path) -> list[Path]:
    """The Ray Tune trial folders of one phase folder (``run_dir/ray/<phase>``): one per Tune trial."""
    return [p for p in Path(phase).iterdir() if p.is_dir() and p.name.startswith("run_trial")]
