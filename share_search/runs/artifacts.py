"""Files attached to trials in the study, shown by optuna-dashboard next to each trial.

Trial artifacts must be uploaded before the trial is told (Optuna refuses afterwards), so
the searcher calls ``attach_trial_artifacts`` just before telling. Each trial gets its
recipe (``architecture.json``), a drawing of its architecture (``architecture.svg``) and,
with dense tasks, one picture of its predictions per dense task (``predictions-<task>.png``,
made by the trial itself: ``runs.pictures``).

``trial_pictures`` reads those pictures back for the report. A run folder may come from
anyone, so only what share-search writes is read: an artifact id that names a plain file
inside the run's artifact folder, at most ``MAX_PICTURE_BYTES``, that is a PNG.
"""

from __future__ import annotations

import base64
import json
import logging
import re
import tempfile
import weakref
from pathlib import Path
from typing import Any, Mapping

import optuna
from optuna.artifacts import FileSystemArtifactStore, upload_artifact

from .record import stage_count, study_records

log = logging.getLogger("share_search")

PICTURE_PREFIX, PICTURE_SUFFIX = "predictions-", ".png"
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
MAX_PICTURE_BYTES = 1 << 18  # a picture is a few KB; a larger file is not one share-search made
ARTIFACT_ATTR = "artifacts:"  # Optuna's system-attribute prefix of artifact records
_ARTIFACT_ID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")  # Optuna's uuid4 ids

# Stage count per study, once known: drawings of column families need the backbone's depth,
# which only a tree's recipe records (every study with baselines holds one).
_STAGES: "weakref.WeakKeyDictionary[optuna.Study, int]" = weakref.WeakKeyDictionary()


def artifact_store(artifact_dir: str | Path) -> FileSystemArtifactStore:
    Path(artifact_dir).mkdir(parents=True, exist_ok=True)
    return FileSystemArtifactStore(str(artifact_dir))


def study_stage_count(study: optuna.Study) -> int | None:
    """``record.stage_count`` of the study, read once per study (None is asked again:
    the study's first tree may come later)."""
    if study not in _STAGES:
        found = stage_count(study.user_attrs, study_records(study))
        if found is None:
            return None
        _STAGES[study] = found
    return _STAGES[study]


def architecture_svg(study: optuna.Study, arch: Mapping[str, Any], details: Mapping[str, Any] | None) -> str:
    from ..arch.layout import layout
    from .drawing import to_svg

    tasks = [t["name"] for t in study.user_attrs.get("tasks") or []] or None
    n_stages = len(arch["stages"]) if arch.get("family") == "tree" else study_stage_count(study)  # a tree knows its depth
    return to_svg(layout(arch, details, n_stages, tasks=tasks))


def attach_trial_artifacts(
    study: optuna.Study,
    trial: optuna.Trial,
    artifact_dir: str | Path,
    arch: Mapping[str, Any],
    details: Mapping[str, Any] | None,
    pictures: Mapping[str, bytes] | None = None,
) -> None:
    """Upload the trial's recipe (and learned details) as JSON, its prediction pictures
    (task name -> PNG bytes) and its drawing as SVG."""
    store = artifact_store(artifact_dir)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "architecture.json"
        path.write_text(json.dumps({"arch": dict(arch), "details": dict(details or {})}, indent=2))
        upload_artifact(artifact_store=store, file_path=str(path), study_or_trial=trial, mimetype="application/json")
        for task, png in (pictures or {}).items():
            path = Path(tmp) / f"{PICTURE_PREFIX}{task}{PICTURE_SUFFIX}"
            path.write_bytes(png)
            upload_artifact(artifact_store=store, file_path=str(path), study_or_trial=trial, mimetype="image/png")
        try:
            svg = architecture_svg(study, arch, details)
        except Exception as exc:  # a drawing must never keep a trial from being told
            log.warning("trial %s: no architecture drawing (%s: %s)", trial.number, type(exc).__name__, exc)
            return
        path = Path(tmp) / "architecture.svg"
        path.write_text(svg, encoding="utf-8")
        upload_artifact(artifact_store=store, file_path=str(path), study_or_trial=trial, mimetype="image/svg+xml")


def pictures_from_result(result: Mapping[str, Any]) -> dict[str, bytes]:
    """The prediction pictures a trial reported (``pictures_json``: task -> base64 PNG)."""
    raw = result.get("pictures_json")
    return {task: base64.b64decode(data) for task, data in json.loads(raw).items()} if raw else {}


def pictures_to_result(pictures: Mapping[str, bytes]) -> str:
    """``pictures_from_result``'s inverse: a JSON string, since Ray flattens nested results."""
    return json.dumps({task: base64.b64encode(png).decode("ascii") for task, png in pictures.items()})


def trial_pictures(trial: optuna.trial.FrozenTrial, artifact_dir: str | Path) -> dict[str, bytes]:
    """``{task: PNG bytes}`` of a told trial's prediction pictures, in task order of upload.

    Read from the run's artifact folder only, and only what looks like what share-search
    wrote (see the module note); anything else is passed over."""
    root = Path(artifact_dir).resolve()
    found = {}
    for key, value in trial.system_attrs.items():
        if not key.startswith(ARTIFACT_ATTR) or not isinstance(value, str):
            continue
        try:
            meta = json.loads(value)
        except ValueError:
            continue
        if not isinstance(meta, dict) or meta.get("mimetype") != "image/png":
            continue
        name, artifact_id = str(meta.get("filename", "")), str(meta.get("artifact_id", ""))
        if not (name.startswith(PICTURE_PREFIX) and name.endswith(PICTURE_SUFFIX) and _ARTIFACT_ID.fullmatch(artifact_id)):
            continue
        png = _read_picture(root / artifact_id)
        if png is not None:
            found[name[len(PICTURE_PREFIX) : -len(PICTURE_SUFFIX)]] = png
    return found


def _read_picture(path: Path) -> bytes | None:
    if path.is_symlink() or not path.is_file() or path.stat().st_size > MAX_PICTURE_BYTES:
        return None
    data = path.read_bytes()
    return data if data.startswith(PNG_SIGNATURE) else None
