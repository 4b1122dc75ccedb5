"""optuna-dashboard on a run's study, and what the run writes into the study for it.

``make_server(run_dir, port)`` serves optuna-dashboard for the run's storage and artifact
store (``run_dir/artifacts``), bound to 127.0.0.1 only. optuna-dashboard has no
authentication and can delete or edit the study, so ``guarded`` answers only requests
addressed to the loopback names (a web page that rebinds its own DNS name to 127.0.0.1
sends its own name as Host) and, unless writes are allowed, only GET and HEAD: the
dashboard's pages, plots and parameter importances are all GETs (optuna-dashboard 0.21).
Only the study is opened: nothing the run folder names is imported.

``annotate_study`` runs after export: the study note summarises the best architectures and
each exported checkpoint becomes a study artifact (Optuna refuses a trial artifact once
the trial is told: ``UpdateFinishedTrialError``).
"""

from __future__ import annotations

import json
import logging
import math
import re
import signal
import tempfile
import threading
import zipfile
from pathlib import Path
from typing import Any, Sequence
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server as _make_wsgi_server

import optuna
import pandas as pd

from ..errors import RunError
from .artifacts import ARTIFACT_ATTR as _ARTIFACT_KEY
from .artifacts import artifact_store
from .rank import board_statement
from .report import on_front, study_tasks

log = logging.getLogger("share_search")

HOST = "127.0.0.1"
LOOPBACK_NAMES = (HOST, "localhost", "[::1]")  # the Host names the dashboard answers
READ_METHODS = ("GET", "HEAD")  # all the dashboard's pages and plots need
_HOST_HEADER = re.compile(r"(?P<name>\[[^\]]*\]|[^:]*)(?::(?P<port>\d+))?")  # name or [v6], then :port
DEFAULT_PORT = 8080
NOTE_ROWS = 5
EXPORT_ARTIFACT_PREFIX = "export-"  # study artifacts this module owns (replaced on each export)


def artifact_dir(run_dir: str | Path) -> Path:
    return Path(run_dir).resolve() / "artifacts"


def dashboard_app(run_dir: str | Path, allow_writes: bool = False):
    """The optuna-dashboard WSGI application for a run folder (its storage and artifacts),
    behind ``guarded``."""
    from optuna_dashboard import wsgi

    from .study import load_run_study, open_storage, storage_url

    run_dir = Path(run_dir).resolve()
    _, spec = load_run_study(run_dir)  # checks that this is a run folder holding the study
    app = wsgi(open_storage(storage_url(spec, run_dir)), artifact_store=artifact_store(artifact_dir(run_dir)))
    return guarded(app, allow_writes)


def host_is_loopback(host: str) -> bool:
    """Whether a Host header names this machine by a loopback name. A DNS-rebinding page
    sends its own host name, so the name is what is checked; any port is accepted, since an
    SSH tunnel (``ssh -L 9000:127.0.0.1:8080``) makes the browser send its local port."""
    match = _HOST_HEADER.fullmatch(host.strip().lower())
    return match is not None and match["name"] in LOOPBACK_NAMES


def guarded(app, allow_writes: bool = False):
    """``app`` answering only requests whose Host is a loopback name of this server, and
    only GET/HEAD unless ``allow_writes``; other requests get 421 or 403 and a one-line reason."""

    def refuse(start_response, status: str, reason: str) -> list[bytes]:
        body = (reason + "\n").encode()
        start_response(status, [("Content-Type", "text/plain; charset=utf-8"), ("Content-Length", str(len(body)))])
        return [body]

    def guarded_app(environ, start_response):
        host, port = environ.get("HTTP_HOST", ""), str(environ.get("SERVER_PORT", ""))
        if not host_is_loopback(host):
            return refuse(start_response, "421 Misdirected Request", f"Host {host[:100]!r} is not this dashboard; open http://{HOST}:{port}/dashboard/")
        if not allow_writes and environ.get("REQUEST_METHOD") not in READ_METHODS:
            return refuse(start_response, "403 Forbidden", "the dashboard is read-only; start it with `share-search dashboard RUN --allow-writes` to change the study")
        return app(environ, start_response)

    return guarded_app


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:  # the dashboard polls: no line per request
        pass


def make_server(run_dir: str | Path, port: int = DEFAULT_PORT, allow_writes: bool = False) -> WSGIServer:
    """A server on 127.0.0.1:``port`` (0: any free port, see ``server.server_port``),
    read-only unless ``allow_writes``; call ``serve_forever()`` on it, ``shutdown()`` from
    another thread to stop."""
    if not 0 <= port <= 65535:
        raise RunError(f"--port must be within 0..65535, got {port}")
    app = dashboard_app(run_dir, allow_writes)
    try:
        return _make_wsgi_server(HOST, port, app, server_class=WSGIServer, handler_class=_QuietHandler)
    except OSError as exc:
        raise RunError(f"--port {port}: cannot listen on {HOST}:{port} ({exc.strerror or exc}); choose another port") from exc


def serve_until_stopped(server: WSGIServer) -> None:
    """Serve until Ctrl-C or SIGTERM, then close. The signals ask the loop to stop rather
    than raise: wsgiref swallows a KeyboardInterrupt raised while a request is handled."""

    def stop(signum, frame):
        threading.Thread(target=server.shutdown, daemon=True).start()  # shutdown() waits for the loop

    previous = {s: signal.signal(s, stop) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        server.serve_forever()
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
        server.server_close()


def url_of(server: WSGIServer) -> str:
    return f"http://{HOST}:{server.server_port}/dashboard/"


# --------------------------------------------------------------------------- after export
def _fmt(value: Any, digits: int = 4) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)) or pd.isna(value):
        return "–"
    if isinstance(value, float):
        return f"{value:.{digits}g}"
    return f"{value:,}" if isinstance(value, int) else str(value)


def note_markdown(board: pd.DataFrame, tasks: Sequence[Any], exports: Sequence[tuple[Path, str]] = (), rows: int = NOTE_ROWS) -> str:
    """The study note: the best ranked architectures, the Δm convention, and each exported
    folder with the name of its study artifact."""
    ranked = board[board["rank"].notna()].sort_values("rank").head(rows)
    lines = ["## Best architectures", "", "Ranked on validation metrics; * = on the Pareto front of the per-task metrics.", ""]
    if ranked.empty:
        lines.append("No trial finished and was ranked.")
    else:
        header = ["rank", "trial", "architecture", "Δm (%)", *(f"{t.name} {t.metric}" for t in tasks), "params", "MACs"]
        lines += ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
        for _, r in ranked.iterrows():
            dm = r.get("delta_m")
            cells = [
                f"{int(r['rank'])}{'*' if on_front(r.get('pareto_front')) else ''}", str(int(r["trial"])),
                str(r["arch"]).replace("|", "\\|"), "–" if dm is None or pd.isna(dm) else f"{float(dm):+.2f}",
                *(_fmt(r.get(f"val.{t.name}")) for t in tasks), _fmt(_int(r.get("params"))), _fmt(_int(r.get("macs"))),
            ]
            lines.append("| " + " | ".join(cells) + " |")
    lines += ["", board_statement(board), ""]
    if exports:
        lines.append("Exported checkpoints (study artifacts; unzip one, then `share_search.load_model(folder)`):")
        lines += [f"- `{name}`: `{folder}`" for folder, name in exports]
    lines += ["", "Figures: below, and every plot in `share-search report <run folder>` (one HTML file)."]
    return "\n".join(lines)


def _int(value: Any) -> int | None:
    return None if value is None or pd.isna(value) else int(value)


def _remove_export_artifacts(study: optuna.Study, run_dir: str | Path, store) -> None:
    """Drop the export artifacts of an earlier export (their ranks may have changed). The
    run's storage is opened anew: a study keeps its storage private."""
    from ..spec.model import load_spec
    from .study import open_storage, storage_url

    run_dir = Path(run_dir).resolve()
    storage = open_storage(storage_url(load_spec(run_dir / "spec.resolved.yaml"), run_dir))
    study_id = storage.get_study_id_from_name(study.study_name)
    for key, value in storage.get_study_system_attrs(study_id).items():
        if not key.startswith(_ARTIFACT_KEY) or not value:
            continue
        meta = json.loads(value)
        if meta and str(meta.get("filename", "")).startswith(EXPORT_ARTIFACT_PREFIX):
            try:
                store.remove(meta["artifact_id"])
            except Exception:  # already gone from the store: forget the record anyway
                pass
            storage.set_study_system_attr(study_id, key, json.dumps(None))  # how optuna-dashboard deletes one


def upload_exports(study: optuna.Study, run_dir: str | Path, exported: Sequence[Path]) -> list[str]:
    """Each exported folder zipped into one study artifact; returns the artifact file names."""
    from optuna.artifacts import upload_artifact

    store = artifact_store(artifact_dir(run_dir))
    _remove_export_artifacts(study, run_dir, store)
    names = []
    with tempfile.TemporaryDirectory() as tmp:
        for folder in map(Path, exported):
            metrics = json.loads((folder / "metrics.json").read_text())
            name = f"{EXPORT_ARTIFACT_PREFIX}{folder.name}-trial-{metrics['trial']}.zip"
            path = Path(tmp) / name
            with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as zf:  # weights do not compress
                for item in sorted(folder.iterdir()):
                    if item.is_file():
                        zf.write(item, f"{folder.name}/{item.name}")
            upload_artifact(artifact_store=store, file_path=str(path), study_or_trial=study, mimetype="application/zip")
            names.append(name)
    return names


def annotate_study(study: optuna.Study, run_dir: str | Path, board: pd.DataFrame, exported: Sequence[Path]) -> None:
    """After export: the study note, the exported checkpoints and summary figures, for
    optuna-dashboard. A failure here is logged, never raised: the run itself succeeded."""
    try:
        _annotate(study, run_dir, board, exported)
    except Exception as exc:
        log.warning("the study was not annotated for optuna-dashboard (%s: %s)", type(exc).__name__, exc)


def _annotate(study: optuna.Study, run_dir: str | Path, board: pd.DataFrame, exported: Sequence[Path]) -> None:
    from optuna_dashboard import save_note, save_plotly_graph_object

    from .report import cost_figure, delta_m_by_family_figure, pareto_figure, report_data

    names = upload_exports(study, run_dir, exported)
    save_note(study, note_markdown(board, study_tasks(study), list(zip(exported, names))))
    data = report_data(study, top=0, board=board)
    for name, figure in (("pareto", pareto_figure(data)), ("delta-m-by-family", delta_m_by_family_figure(data)), ("cost", cost_figure(data))):
        if figure is not None:  # a fixed id: a later export replaces the figure
            save_plotly_graph_object(study, figure, graph_object_id=f"share-search-{name}")
