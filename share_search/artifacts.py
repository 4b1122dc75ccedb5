"""Files attached to trials in the study, shown by optuna-dashboard next to each trial.

Trial artifacts must be uploaded before the trial is told (Optuna refuses afterwards), so
the searcher calls ``attach_trial_artifacts`` just before telling.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any, Mapping

import optuna
from optuna.artifacts import FileSystemArtifactStore, upload_artifact


def artifact_store(artifact_dir: str | Path) -> FileSystemArtifactStore:
    Path(artifact_dir).mkdir(parents=True, exist_ok=True)
    return FileSystemArtifactStore(str(artifact_dir))


def attach_trial_artifacts(
    study: optuna.Study,
    trial: optuna.Trial,
    artifact_dir: str | Path,
    arch: Mapping[str, Any],
    details: Mapping[str, Any] | None,
) -> None:
    """Upload the trial's architecture recipe (and learned details) as a JSON artifact."""
    store = artifact_store(artifact_dir)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "architecture.json"
        path.write_text(json.dumps({"arch": dict(arch), "details": dict(details or {})}, indent=2))
        upload_artifact(artifact_store=store, file_path=str(path), study_or_trial=trial, mimetype="application/json")
