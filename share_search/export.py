"""Exported architectures: weights that load without unpickling, beside their recipe.

A folder per exported trial holds ``weights.safetensors`` (content hash recorded),
``recipe.json`` (ArchConfig, tasks, backbone, input shape, data and train settings, the
spec), ``metrics.json`` (validation and, for the selected trials only, test metrics),
``example.safetensors`` (a fixed input batch and its outputs) and a model card.
``load_model`` rebuilds the network from the recipe (nanoGPT's way), never from a pickle.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from dataclasses import asdict
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from .arch import build_model, config_from_dict
from .arch._cost import count_macs, count_parameters
from .backbones import make_backbone
from .errors import CheckpointError
from .tasks import Task

FORMAT_VERSION = 1
WEIGHTS = "weights.safetensors"
RECIPE = "recipe.json"
METRICS = "metrics.json"
EXAMPLE = "example.safetensors"
CARD = "MODEL_CARD.md"


def sha256_of(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def save_weights(state_dict: Mapping[str, torch.Tensor], path: Path) -> str:
    """Write a state dict as safetensors; returns its sha256."""
    tensors = {k: v.detach().to("cpu").contiguous().clone() for k, v in state_dict.items()}
    save_file(tensors, str(path))
    return sha256_of(path)


def load_weights(path: Path, expected_sha256: str | None = None) -> dict[str, torch.Tensor]:
    """Read safetensors weights, refusing a file whose hash differs from the recorded one."""
    if not path.is_file():
        raise CheckpointError(f"{path}: weights file is missing")
    if expected_sha256 is not None:
        actual = sha256_of(path)
        if actual != expected_sha256:
            raise CheckpointError(
                f"{path}: content hash {actual[:12]}… does not match the recorded {expected_sha256[:12]}…; "
                "the file is truncated or was changed"
            )
    try:
        return load_file(str(path))
    except (SafetensorError, OSError, ValueError) as exc:
        raise CheckpointError(f"{path}: not a readable safetensors file ({exc})") from exc


def load_weights_into(model: torch.nn.Module, path: Path, expected_sha256: str | None = None) -> None:
    """Load a weights file into ``model``, every key and shape matching; a mismatch (weights
    of another network, or of a version that laid the network out otherwise) is a CheckpointError."""
    state = load_weights(path, expected_sha256)
    try:
        result = model.load_state_dict(state, strict=False)
    except RuntimeError as exc:  # a tensor of the wrong shape
        raise CheckpointError(f"{path}: weights do not fit the recipe's network: {' '.join(str(exc).split())[:400]}") from exc
    if result.missing_keys or result.unexpected_keys:
        raise CheckpointError(
            f"{path}: weights do not fit the recipe's network: missing {_some(result.missing_keys)}; "
            f"unexpected {_some(result.unexpected_keys)}"
        )


def _some(keys: Sequence[str], shown: int = 3) -> str:
    if not keys:
        return "none"
    more = f" and {len(keys) - shown} more" if len(keys) > shown else ""
    return ", ".join(keys[:shown]) + more


def write_export(
    folder: Path,
    *,
    model: torch.nn.Module,
    plan_dict: Mapping[str, Any],
    tasks: tuple[Task, ...],
    backbone,
    spec_dict: Mapping[str, Any],
    metrics: Mapping[str, Any],
    example_x: torch.Tensor,
) -> Path:
    """Write one exported architecture; the folder is written whole or not at all."""
    tmp = folder.with_name(folder.name + ".tmp")
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir(parents=True)
    sha = save_weights(model.state_dict(), tmp / WEIGHTS)
    model.eval()
    with torch.no_grad():
        outputs = model(example_x)
    save_file({"x": example_x.contiguous(), **{f"out.{k}": v.contiguous() for k, v in outputs.items()}}, str(tmp / EXAMPLE))
    recipe = {
        "format_version": FORMAT_VERSION,
        "arch": dict(plan_dict["arch"]),
        "train": dict(plan_dict["train"]),
        "tasks": [asdict(t) for t in tasks],
        "backbone": {"name": backbone.name, "options": backbone.options, "input_shape": list(backbone.input_shape)},
        "data": spec_dict.get("data", {}),
        "spec": spec_dict,
        "weights_sha256": sha,
    }
    (tmp / RECIPE).write_text(json.dumps(recipe, indent=2, default=str))
    (tmp / METRICS).write_text(json.dumps(metrics, indent=2, default=_json_default))
    (tmp / CARD).write_text(model_card(recipe, metrics))
    if folder.exists():
        shutil.rmtree(folder)
    tmp.rename(folder)
    return folder


def _json_default(value):
    if isinstance(value, (np.floating, np.integer)):
        return value.item()
    return str(value)


def model_card(recipe: Mapping[str, Any], metrics: Mapping[str, Any]) -> str:
    """A short human-readable card: what the network is, how it was chosen, how it scores."""
    from .rank import DELTA_M_CONVENTION

    arch = config_from_dict(recipe["arch"])
    lines = [
        f"# {recipe['spec'].get('name', 'share-search')} — rank {metrics.get('rank')} (trial {metrics.get('trial')})",
        "",
        f"Architecture: `{arch.summary()}`",
        f"Backbone: `{recipe['backbone']['name']}` {recipe['backbone']['options'] or ''} on input {tuple(recipe['backbone']['input_shape'])}",
        f"Parameters: {metrics.get('params')}; multiply-accumulates per sample: {metrics.get('macs')}",
        f"Data: `{recipe['data'].get('source')}`",
        "",
        "Selected on validation metrics; test metrics were computed once, for the exported architectures only.",
        "",
        "| task | metric | direction | validation | test |",
        "|---|---|---|---|---|",
    ]
    for t in recipe["tasks"]:
        for m in [t["metric"], *t.get("extra_metrics", [])]:
            direction = "higher is better" if m not in ("mae", "rmse") else "lower is better"
            v = metrics.get("val", {}).get(t["name"], {}).get(m)
            s = metrics.get("test", {}).get(t["name"], {}).get(m)
            lines.append(f"| {t['name']} | {m} | {direction} | {_fmt(v)} | {_fmt(s)} |")
    named = [t for t in recipe["tasks"] if t.get("class_names")]
    if named:
        lines += ["", "Classes, in output order (a binary task's one output is the chance of its second class):", ""]
        lines += [f"- {t['name']}: {', '.join(str(n) for n in t['class_names'])}" for t in named]
    if metrics.get("delta_m") is not None:
        lines += ["", f"Δm (validation) = {metrics['delta_m']:+.2f}%. {DELTA_M_CONVENTION}"]
    lines += ["", "Load it:", "", "```python", "import share_search as ss", "model = ss.load_model('<this folder>')  # eval-mode nn.Module; model(x) -> {task: output}", "```", ""]
    return "\n".join(lines)


def _fmt(v) -> str:
    return "-" if v is None else f"{v:.4f}"


def read_recipe(folder: Path) -> dict[str, Any]:
    folder = Path(folder)
    path = folder / RECIPE
    if not path.is_file():
        raise CheckpointError(f"{folder}: not an exported model (no {RECIPE})")
    try:
        recipe = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise CheckpointError(f"{path}: not valid JSON ({exc})") from exc
    if recipe.get("format_version") != FORMAT_VERSION:
        raise CheckpointError(f"{path}: format_version {recipe.get('format_version')!r} is not {FORMAT_VERSION}")
    return recipe


def load_model(path: str | Path, device: str | torch.device = "cpu") -> torch.nn.Module:
    """Rebuild an exported network from its recipe and weights; returns it in eval mode.

    The weights' content hash is checked first; nothing is unpickled. The model carries
    ``model.tasks`` (task definitions with label names and directions) and ``model.recipe``.
    """
    folder = Path(path)
    recipe = read_recipe(folder)
    tasks = tuple(Task(**{**t, "extra_metrics": tuple(t["extra_metrics"]), "class_names": tuple(t["class_names"]) if t.get("class_names") else None}) for t in recipe["tasks"])
    b = recipe["backbone"]
    backbone = make_backbone(b["name"], b["input_shape"], b["options"])
    model = build_model(config_from_dict(recipe["arch"]), backbone, tasks)
    load_weights_into(model, folder / WEIGHTS, recipe["weights_sha256"])
    model.tasks = tasks
    model.recipe = recipe
    return model.to(device).eval()


def model_cost(model: torch.nn.Module, input_shape) -> tuple[int, int]:
    return count_parameters(model), count_macs(model, input_shape)


# --------------------------------------------------------------------------- from a run folder
TRIAL_FILE = "trial.json"


def find_checkpoint(run_dir: Path, trial_number: int) -> Path:
    """The Ray Tune checkpoint folder holding a trial's best-validation weights."""
    for marker in sorted(Path(run_dir, "ray").glob(f"*/*/checkpoint_*/{TRIAL_FILE}")):
        try:
            if json.loads(marker.read_text()).get("optuna_trial") == trial_number:
                return marker.parent
        except (OSError, json.JSONDecodeError):
            continue
    raise CheckpointError(f"{run_dir}: no checkpoint for trial {trial_number} under {Path(run_dir, 'ray')}")


def export_ranked(run_dir: Path, problem, board, top: int, delta_m_convention: bool = True) -> list[Path]:
    """Export the ``top`` ranked trials of a leaderboard to ``run_dir/export/rank-<k>``.

    Test metrics are computed here, once, for these trials only.
    """
    from .train import evaluate

    ranked = board[board["rank"].notna()].sort_values("rank")
    if top > len(ranked):
        raise CheckpointError(f"--top {top}: only {len(ranked)} trial(s) finished and were ranked")
    out = []
    export_dir = Path(run_dir) / "export"
    export_dir.mkdir(parents=True, exist_ok=True)
    for _, row in ranked.head(top).iterrows():
        trial = int(row["trial"])
        ckpt = find_checkpoint(run_dir, trial)
        marker = json.loads((ckpt / TRIAL_FILE).read_text())
        plan = marker["plan"]
        model = build_model(config_from_dict(plan["arch"]), problem.backbone, problem.tasks)
        load_weights_into(model, ckpt / WEIGHTS)
        model.eval()
        metrics = {
            "rank": int(row["rank"]),
            "trial": trial,
            "epoch": marker.get("epoch"),
            "family": row["family"],
            "arch": row["arch"],
            "params": count_parameters(model),
            "macs": count_macs(model, problem.backbone.input_shape),
            "delta_m": None if row.get("delta_m") is None or row.get("delta_m") != row.get("delta_m") else float(row["delta_m"]),
            "val": evaluate(model, problem.data.val, problem.tasks),
            "test": evaluate(model, problem.data.test, problem.tasks),
        }
        example_x = torch.as_tensor(problem.data.val.x[:8])
        folder = write_export(
            export_dir / f"rank-{int(row['rank'])}",
            model=model, plan_dict=plan, tasks=problem.tasks, backbone=problem.backbone,
            spec_dict=problem.spec.to_dict(), metrics=metrics, example_x=example_x,
        )
        out.append(folder)
    return out
