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

log = logging.getLogger("share_search")

# Stage count per study, once known: drawings of column families need the backbone's depth,
# which only a tree's recipe records (every study with baselines holds one).
_STAGES: "weakref.WeakKeyDictionary[optuna.Study, int]" = weakref.WeakKeyDictionary()


def artifact_store(artifact_dir: str | Path) -> FileSystemArtifactStore:
    Path(artifact_dir).mkdir(parents=True, exist_ok=True)
    return FileSystemArtifactStore(str(artifact_dir))


def stage_count(study: optuna.Study, arch: Mapping[str, Any]) -> int | None:
    """The backbone's stage count: the study's ``n_stages`` attribute if set, else read
    off this tree or the study's first tree; None when nothing tells."""
    if arch.get("family") == "tree":
        return len(arch["stages"])
    if study not in _STAGES:
        from .drawing import infer_n_stages

        found = study.user_attrs.get("n_stages") or infer_n_stages(
            t.user_attrs.get("arch_json") for t in study.get_trials(deepcopy=False)
        )
        if found is None:
            return None
        _STAGES[study] = int(found)
    return _STAGES[study]


def architecture_svg(study: optuna.Study, arch: Mapping[str, Any], details: Mapping[str, Any] | None) -> str:
    from .drawing import layout, to_svg

    tasks = [t["name"] for t in study.user_attrs.get("tasks") or []] or None
    return to_svg(layout(arch, details, stage_count(study, arch), tasks=tasks))


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
