"""Files attached to trials in the study, shown by optuna-dashboard next to each trial.

Trial artifacts must be uploaded before the trial is told (Optuna refuses afterwards), so
the searcher calls ``attach_trial_artifacts`` just before telling. Each trial gets its
recipe (``architecture.json``) and a drawing of its architecture (``architecture.svg``).
"""

from __future__ import annotations

import json
import logging
import tempfile
import weakref
from pathlib import Path
from typing import Any, Mapping

import optuna
from optuna.artifacts import FileSystemArtifactStore, upload_artifact

from .record import stage_count, study_records

log = logging.getLogger("share_search")

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
) -> None:
    """Upload the trial's recipe (and learned details) as JSON and its drawing as SVG."""
    store = artifact_store(artifact_dir)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "architecture.json"
        path.write_text(json.dumps({"arch": dict(arch), "details": dict(details or {})}, indent=2))
        upload_artifact(artifact_store=store, file_path=str(path), study_or_trial=trial, mimetype="application/json")
        try:
            svg = architecture_svg(study, arch, details)
        except Exception as exc:  # a drawing must never keep a trial from being told
            log.warning("trial %s: no architecture drawing (%s: %s)", trial.number, type(exc).__name__, exc)
            return
        path = Path(tmp) / "architecture.svg"
        path.write_text(svg, encoding="utf-8")
        upload_artifact(artifact_store=store, file_path=str(path), study_or_trial=trial, mimetype="image/svg+xml")
