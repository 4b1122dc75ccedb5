"""Exported architectures: weights that load without unpickling, beside their recipe.

A folder per exported trial holds ``weights.safetensors`` (content hash recorded),
``recipe.json`` (ArchConfig, tasks, backbone, input shape, data and train settings, the
spec), ``metrics.json`` (validation and, for the selected trials only, test metrics),
``example.safetensors`` (a fixed input batch and its outputs), a model card and, written
last, ``manifest.json``: the sha256 of every other file. The manifest is how share-search
knows a folder as its own (a re-export replaces only such folders, unchanged) and what
``load_model`` checks before it reads anything else.

``load_model`` rebuilds the network from the recipe (nanoGPT's way), never from a pickle,
and imports nothing the recipe names unless the caller trusts it: an export from
elsewhere is data, not code.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
import secrets
import shutil
from dataclasses import asdict
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd
import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file
from safetensors.torch import save as safetensors_bytes

from ..arch import build_model, config_from_dict
from ..arch._cost import count_macs, count_parameters
from ..arch.backbones import BACKBONES, StageBuilder, make_backbone
from ..arch.heads import predict_at_input_size
from ..errors import CheckpointError
from ..spec.heads import DENSE_TASK_TYPES
from ..spec.registry import FAMILIES, HEADS
from ..spec.registry import METRICS as METRIC_REGISTRY  # export.METRICS is the metrics file name
from ..train.tasks import Task
from ..user_code import import_plugins
from .record import TrialRecord
from .uncertainty import separation_line

FORMAT_VERSION = 1
WEIGHTS = "weights.safetensors"
RECIPE = "recipe.json"
METRICS = "metrics.json"
EXAMPLE = "example.safetensors"
CARD = "MODEL_CARD.md"
EVAL_BATCH = 256  # rows evaluated at once where the trial's batch size is not recorded
MANIFEST = "manifest.json"
MANIFEST_KIND = "share-search export"
MAX_MANIFEST_BYTES = 1 << 20  # a manifest lists a handful of files; a larger one is not ours
MAX_INPUT_DIMS = 8
MAX_INPUT_ELEMENTS = 1 << 28  # values per sample (1 GiB of float32): far above any data share-search trains on
RANK_FOLDER = re.compile(r"rank-(\d+)")


def sha256_of(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def check_sha256(path: Path, expected: str) -> None:
    """Refuse a file whose content hash differs from the recorded one."""
    actual = sha256_of(path)
    if actual != expected:
        raise CheckpointError(
            f"{path}: content hash {actual[:12]}… does not match the recorded {expected[:12]}…; "
            "the file is truncated or was changed"
        )


def write_safetensors(tensors: Mapping[str, torch.Tensor], path: Path) -> None:
    """Write tensors as safetensors through Python's own file writing, so the file gets the
    umask's mode like every other file (safetensors' ``save_file`` makes it 0600)."""
    Path(path).write_bytes(safetensors_bytes(dict(tensors)))


def save_weights(state_dict: Mapping[str, torch.Tensor], path: Path) -> str:
    """Write a state dict as safetensors; returns its sha256."""
    write_safetensors({k: v.detach().to("cpu").contiguous().clone() for k, v in state_dict.items()}, path)
    return sha256_of(path)


def _weights_file_exists(path: Path) -> None:
    if not path.is_file():
        raise CheckpointError(f"{path}: weights file is missing")


def load_weights(path: Path, expected_sha256: str | None = None) -> dict[str, torch.Tensor]:
    """Read safetensors weights, refusing a file whose hash differs from the recorded one."""
    _weights_file_exists(path)
    if expected_sha256 is not None:
        check_sha256(path, expected_sha256)
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


def stored_shapes(path: Path) -> dict[str, tuple[int, ...]]:
    """Each tensor's shape in a safetensors file, read from its header alone (the format checks
    that the header's tensors fill the file, so these shapes are backed by bytes on disk)."""
    _weights_file_exists(path)
    try:
        with safe_open(str(path), framework="pt") as f:
            return {key: tuple(f.get_slice(key).get_shape()) for key in f.keys()}
    except (SafetensorError, OSError, ValueError) as exc:
        raise CheckpointError(f"{path}: not a readable safetensors file ({exc})") from exc


def check_fits_weights(build, path: Path, required: bool) -> None:
    """Build the network on the meta device (shapes only, no memory) and refuse it unless its
    state has exactly the weights file's keys and shapes: a forged recipe (a width of a
    billion) then cannot make ``load_model`` allocate more than the weights file holds.
    ``required``: a built-in network must build on the meta device; a trusted user builder
    that cannot is built for real instead, and checked when its weights are loaded."""
    try:
        with torch.device("meta"):
            network = build()
    except Exception as exc:
        if required:
            raise CheckpointError(f"{path.parent / RECIPE}: the recipe's network cannot be built ({type(exc).__name__}: {' '.join(str(exc).split())[:200]})") from None
        return
    expected = {key: tuple(value.shape) for key, value in network.state_dict().items()}
    stored = stored_shapes(path)
    if expected == stored:
        return
    shapes = [f"{k} {list(stored[k])} in the file, {list(expected[k])} in the recipe" for k in expected if k in stored and stored[k] != expected[k]]
    raise CheckpointError(
        f"{path}: weights do not fit the recipe's network: missing {_some([k for k in expected if k not in stored])}; "
        f"unexpected {_some([k for k in stored if k not in expected])}; other shapes {_some(shapes, 2)}"
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
    """Write one exported architecture; the folder is written whole or not at all, and an
    existing ``folder`` is replaced only if it is an unchanged export (``check_own_export``)."""
    folder = Path(folder)
    if folder.exists() or folder.is_symlink():
        check_own_export(folder)
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = _new_folder_beside(folder, "tmp")
    try:
        sha = save_weights(model.state_dict(), tmp / WEIGHTS)
        model.eval()
        with torch.no_grad():
            outputs = model(example_x)
        write_safetensors({"x": example_x.contiguous(), **{f"out.{k}": v.contiguous() for k, v in outputs.items()}}, tmp / EXAMPLE)
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
        write_manifest(tmp)
    except BaseException:
        shutil.rmtree(tmp)  # the half-written folder is ours
        raise
    if folder.exists():
        old = folder.rename(_new_folder_beside(folder, "old"))  # checked above: an export we wrote
        tmp.rename(folder)
        shutil.rmtree(old)
    else:
        tmp.rename(folder)
    return folder


def _new_folder_beside(folder: Path, what: str) -> Path:
    """A new, empty, hidden folder next to ``folder`` that no one else's file can be in
    (made by ``mkdir``, so it gets the umask's mode, unlike ``mkdtemp``'s 0700)."""
    while True:
        path = folder.with_name(f".{folder.name}.{secrets.token_hex(4)}.{what}")
        try:
            path.mkdir()
            return path
        except FileExistsError:
            continue


# --------------------------------------------------------------------------- manifest
def write_manifest(folder: Path) -> Path:
    """Record the sha256 of every file in ``folder``; written last, it marks the export complete."""
    files = {p.name: sha256_of(p) for p in sorted(Path(folder).iterdir()) if p.name != MANIFEST}
    path = Path(folder) / MANIFEST
    path.write_text(json.dumps({"kind": MANIFEST_KIND, "files": files}, indent=2))
    return path


def read_manifest(folder: Path) -> dict[str, str]:
    """The manifest's ``{file name: sha256}``, refused unless it has exactly that shape."""
    path = Path(folder) / MANIFEST
    if not Path(folder).is_dir():
        raise CheckpointError(f"{folder}: not an exported model (no such folder)")
    if path.is_symlink() or not path.is_file():
        raise CheckpointError(f"{folder}: not an exported model (no {MANIFEST}; an export written before share-search recorded one must be exported again)")
    with open(path, "rb") as f:
        data = f.read(MAX_MANIFEST_BYTES + 1)
    try:
        if len(data) > MAX_MANIFEST_BYTES:
            raise ValueError(f"larger than {MAX_MANIFEST_BYTES} bytes")
        manifest = json.loads(data)
        files = manifest["files"] if isinstance(manifest, dict) and manifest.get("kind") == MANIFEST_KIND else None
        if not isinstance(files, dict) or not all(_is_plain_name(n) and isinstance(h, str) and re.fullmatch(r"[0-9a-f]{64}", h) for n, h in files.items()):
            raise ValueError(f'expected {{"kind": "{MANIFEST_KIND}", "files": {{file name: sha256}}}}')
    except ValueError as exc:  # json.JSONDecodeError and UnicodeDecodeError are ValueErrors
        raise CheckpointError(f"{path}: not a share-search manifest ({str(exc)[:200]})") from None
    return files


def _is_plain_name(name: object) -> bool:
    return isinstance(name, str) and name not in ("", ".", "..", MANIFEST) and "/" not in name and "\\" not in name and "\0" not in name


def verify_export(folder: Path) -> None:
    """Every file in an export is listed in its manifest with the same sha256, and every
    listed file is there: checked before any of them is read."""
    folder = Path(folder)
    files = read_manifest(folder)
    for entry in sorted(folder.iterdir()):
        if entry.name != MANIFEST and entry.name not in files:
            raise CheckpointError(f"{entry}: not listed in {MANIFEST}; an export holds only the files share-search wrote")
    for name, sha in sorted(files.items()):
        path = folder / name
        if path.is_symlink() or not path.is_file():
            raise CheckpointError(f"{path}: listed in {MANIFEST} but missing or not a plain file")
        check_sha256(path, sha)


def check_own_export(folder: Path) -> None:
    """Refuse to replace or remove ``folder`` unless share-search wrote it and nothing in
    it changed since: a user's file in it is never deleted."""
    try:
        if folder.is_symlink() or not folder.is_dir():
            raise CheckpointError(f"{folder}: not a folder")
        verify_export(folder)
    except CheckpointError as exc:
        raise CheckpointError(
            f"export replaces only the rank folders it wrote, unchanged since, and {folder} is not one ({exc}); "
            "move it elsewhere, then export again"
        ) from None


def _json_default(value):
    if isinstance(value, (np.floating, np.integer)):
        return value.item()
    return str(value)


def _direction(metric: str) -> str:
    if metric not in METRIC_REGISTRY:
        return "unknown (a metric not registered here)"
    return "higher is better" if METRIC_REGISTRY[metric].higher_is_better else "lower is better"


def model_card(recipe: Mapping[str, Any], metrics: Mapping[str, Any]) -> str:
    """A short human-readable card: what the network is, how it was chosen, how it scores."""
    from .rank import DELTA_M_PRIMARY, delta_m_statement

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
            direction = _direction(m)
            v = metrics.get("val", {}).get(t["name"], {}).get(m)
            s = metrics.get("test", {}).get(t["name"], {}).get(m)
            lines.append(f"| {t['name']} | {m} | {direction} | {_fmt(v)} | {_fmt(s)} |")
    dense = [f"{t['name']} ({t['type']})" for t in recipe["tasks"] if t.get("type") in DENSE_TASK_TYPES]
    if dense:
        lines += ["", f"Per-pixel tasks: {', '.join(dense)}. Each of their metrics is computed over the valid pixels of the "
                  "whole split (mIoU from one confusion matrix); their outputs have the input's height and width."]
    named = [t for t in recipe["tasks"] if t.get("class_names")]
    if named:
        lines += ["", "Classes, in output order (a binary task's one output is the chance of its second class):", ""]
        lines += [f"- {t['name']}: {', '.join(str(n) for n in t['class_names'])}" for t in named]
    if metrics.get("delta_m") is not None:
        statement = delta_m_statement(metrics.get("delta_m_convention") or DELTA_M_PRIMARY)  # exports made before it was recorded: primary
        lines += ["", f"Δm (validation) = {metrics['delta_m']:+.2f}%{_seed_spread(metrics)}. {statement}"]
    lines += seeds_section(metrics)
    lines += ["", "Load it:", "", "```python", "import share_search as ss", "model = ss.load_model('<this folder>')  # eval-mode nn.Module; model(x) -> {task: output}", "```", ""]
    return "\n".join(lines)


def _seed_spread(metrics: Mapping[str, Any]) -> str:
    seeds = metrics.get("seeds") or {}
    if (seeds.get("n") or 1) < 2:
        return ""
    se = seeds.get("delta_m_se")
    return f", mean over {seeds['n']} seeds" + ("" if se is None else f" ± {se:.2f} (standard error)")


def seeds_section(metrics: Mapping[str, Any]) -> list[str]:
    """What the seeds say: whose weights these are, and whether the pick is tied (``uncertainty``)."""
    from .uncertainty import REPEATS_STATEMENT, TIE_ALPHA

    seeds = metrics.get("seeds")
    if not seeds:
        return []
    n = seeds.get("n") or 1
    lines = ["", f"Seeds: {n} per architecture. These weights are seed {seeds.get('weights_seed')}'s (the first seed, the spec's), "
                 "so the validation and test values in the table are of that one network."]
    if n > 1:
        lines.append(REPEATS_STATEMENT)
    tied, p = seeds.get("tied_with_best"), seeds.get("p_vs_best")
    if metrics.get("race"):
        lines.append(f"The {metrics['race']} (rank 1 is the race's leader).")
    if metrics.get("rank") == 1:
        lines.append(f"Against the runner-up: {seeds['separation']}." if seeds.get("separation") else "No runner-up was ranked.")
    elif tied is None:
        lines.append("With one seed it cannot be told apart from rank 1 (no seed-to-seed spread is known).")
    elif tied:
        lines.append(f"TIED with rank 1: a paired t-test over the seeds cannot tell them apart (p = {p:.3g} >= α = {TIE_ALPHA}).")
    else:
        lines.append(f"Separated from rank 1: rank 1 is better beyond seed noise (paired t-test, p = {p:.3g} < α = {TIE_ALPHA}).")
    return lines


def _fmt(v) -> str:
    return "-" if v is None else f"{v:.4f}"


def read_recipe(folder: Path) -> dict[str, Any]:
    folder = Path(folder)
    path = folder / RECIPE
    if not path.is_file():
        raise CheckpointError(f"{folder}: not an exported model (no {RECIPE})")
    try:
        recipe = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise CheckpointError(f"{path}: not valid JSON ({exc})") from exc
    if not isinstance(recipe, dict) or recipe.get("format_version") != FORMAT_VERSION:
        version = recipe.get("format_version") if isinstance(recipe, dict) else None
        raise CheckpointError(f"{path}: format_version {version!r} is not {FORMAT_VERSION}")
    return recipe


def checked_input_shape(value: Any, where: Path) -> tuple[int, ...]:
    """A recipe's input shape, refused before anything is built unless it is 1 to
    ``MAX_INPUT_DIMS`` positive sizes of at most ``MAX_INPUT_ELEMENTS`` values per sample
    (a dummy batch of a forged shape would allocate terabytes)."""
    if not (isinstance(value, list) and 1 <= len(value) <= MAX_INPUT_DIMS and all(type(s) is int and s > 0 for s in value)):
        raise CheckpointError(f"{where}: backbone.input_shape must be 1 to {MAX_INPUT_DIMS} positive integers, got {str(value)[:100]}")
    n = math.prod(value)
    if n > MAX_INPUT_ELEMENTS:
        raise CheckpointError(
            f"{where}: backbone.input_shape must hold at most {MAX_INPUT_ELEMENTS:,} values per sample, "
            f"got {value} ({n:,} values)"
        )
    return tuple(value)


def _stage_builder(where: Path, name: str, trust_code: bool, backbone: StageBuilder | None) -> StageBuilder | None:
    """The recipe's stage builder without importing anything it names: the caller's, a
    built-in, or None (``make_backbone`` imports ``name``) only when the caller trusts it."""
    if backbone is not None:
        return backbone
    if name in BACKBONES:
        return BACKBONES[name]
    if not trust_code:
        raise CheckpointError(
            f"{where}: backbone {name!r} is not built in ({', '.join(sorted(BACKBONES))}), and loading imports no code "
            f"an export names unless you trust it: load_model(path, trust_code=True) imports {name!r}, "
            "or load_model(path, backbone=<your stage builder>) uses yours"
        )
    return None


def _family_known(recipe: Mapping[str, Any], where: Path, trust_code: bool) -> None:
    """Make the recipe's family known: a built-in or one registered in this process; the
    plugins the recipe's spec names are imported only with ``trust_code``."""
    arch, spec = recipe.get("arch"), recipe.get("spec")
    family = arch.get("family") if isinstance(arch, dict) else None
    plugins = spec.get("plugins") if isinstance(spec, dict) else None
    if not isinstance(family, str) or family in FAMILIES or not isinstance(plugins, list) or not plugins:
        return
    if not trust_code:
        raise CheckpointError(
            f"{where}: family {family!r} is not registered here; the run's plugins {plugins} register it, and loading "
            "imports no code an export names unless you trust it: load_model(path, trust_code=True), or import them yourself first"
        )
    import_plugins([str(p) for p in plugins], key=f"{where}: spec.plugins")


def load_model(
    path: str | Path,
    device: str | torch.device = "cpu",
    *,
    trust_code: bool = False,
    backbone: StageBuilder | None = None,
) -> torch.nn.Module:
    """Rebuild an exported network from its recipe and weights; returns it in eval mode.

    Every file's content hash is checked against the manifest first; nothing is unpickled,
    and nothing is imported: a backbone that is not built in is imported from the recipe's
    ``module:function`` only with ``trust_code=True``, or ``backbone`` gives its stage
    builder (``function(input_shape, **options)``). The model carries ``model.tasks``
    (task definitions with label names and directions) and ``model.recipe``. A dense task's
    output has its input's height and width, whatever size the network was trained on.
    """
    folder = Path(path)
    verify_export(folder)
    recipe = read_recipe(folder)
    where = folder / RECIPE
    _family_known(recipe, where, trust_code)
    try:
        tasks = tuple(Task(**{**t, "extra_metrics": tuple(t["extra_metrics"]), "class_names": tuple(t["class_names"]) if t.get("class_names") else None}) for t in recipe["tasks"])
        b = recipe["backbone"]
        name, options, arch = str(b["name"]), dict(b["options"] or {}), config_from_dict(recipe["arch"])
        weights_sha256 = str(recipe["weights_sha256"])
        for t in tasks:  # a head is built by a registered name only, with keyword options
            if (t.head is not None and t.head not in HEADS) or not isinstance(t.head_options, dict):
                raise ValueError(f"task {t.name!r}: head {t.head!r} with options {t.head_options!r} is no registered head here ({', '.join(HEADS)})")
    except (KeyError, TypeError, ValueError, AttributeError) as exc:  # pydantic's ValidationError is a ValueError
        raise CheckpointError(f"{where}: not a share-search recipe ({type(exc).__name__}: {' '.join(str(exc).split())[:200]})") from None
    input_shape = checked_input_shape(b["input_shape"], where)
    builder = _stage_builder(where, name, trust_code, backbone)

    def build() -> torch.nn.Module:
        return predict_at_input_size(build_model(arch, make_backbone(name, input_shape, options, builder=builder), tasks))

    check_fits_weights(build, folder / WEIGHTS, required=builder is not None and builder is BACKBONES.get(name))
    model = build()
    load_weights_into(model, folder / WEIGHTS, weights_sha256)
    model.tasks = tasks
    model.recipe = recipe
    return model.to(device).eval()


# --------------------------------------------------------------------------- from a run folder
TRIAL_FILE = "trial.json"


def find_checkpoint(run_dir: Path, trial_number: int, recorded: str | None = None) -> Path:
    """The Ray Tune checkpoint folder holding a trial's best-validation weights: the one the
    study records for it (user attribute ``checkpoint``, relative to the run folder), which
    must lie inside the run folder. Run folders made before trials recorded it are searched."""
    if recorded is not None:
        folder = (Path(run_dir) / recorded).resolve()
        if not folder.is_relative_to(Path(run_dir).resolve()):
            raise CheckpointError(f"{run_dir}: trial {trial_number}'s checkpoint {recorded!r} lies outside the run folder")
        if not (folder / TRIAL_FILE).is_file():
            raise CheckpointError(f"{run_dir}: no checkpoint for trial {trial_number} in {folder} (the folder its study records)")
        return folder
    for marker in sorted(Path(run_dir, "ray").glob(f"*/*/checkpoint_*/{TRIAL_FILE}")):
        try:
            if json.loads(marker.read_text()).get("optuna_trial") == trial_number:
                return marker.parent
        except (OSError, json.JSONDecodeError):
            continue
    raise CheckpointError(f"{run_dir}: no checkpoint for trial {trial_number} under {Path(run_dir, 'ray')}")


def export_ranked(run_dir: Path, problem, board, records: Sequence[TrialRecord], top: int) -> list[Path]:
    """Export the ``top`` ranked trials of a leaderboard to ``run_dir/export/rank-<k>``;
    ``records``: the study's trials the board was built from (their plans are exported).

    Test metrics are computed here, once, for these trials only. The rank folders of an
    earlier export are replaced, and those beyond ``top`` removed, so no folder of another
    ranking is left among the new ones; every one of them is checked to be an unchanged
    export before anything is written. ``metrics.json`` records how the board was ranked.
    """
    ranked = board[board["rank"].notna()].sort_values("rank")
    if top > len(ranked):
        raise CheckpointError(f"--top {top}: only {len(ranked)} trial(s) finished and were ranked")
    export_dir = Path(run_dir) / "export"
    earlier = rank_folders(export_dir)
    for folder in earlier.values():
        check_own_export(folder)
    ranking = {key: board.attrs.get(key) for key in ("rank_by", "budget", "delta_m_convention")}
    by_number = {r.number: r for r in records}
    separation = separation_line(board)
    race = board.attrs.get("race")
    exports = [_ranked_export(run_dir, problem, row, by_number[int(row["trial"])], ranking, separation, race and race.line())
               for _, row in ranked.head(top).iterrows()]
    out = [
        write_export(export_dir / f"rank-{metrics['rank']}", model=model, plan_dict=plan, tasks=problem.tasks, backbone=problem.backbone,
                     spec_dict=problem.spec.to_dict(), metrics=metrics, example_x=example_x)
        for model, plan, metrics, example_x in exports
    ]
    for k, folder in earlier.items():
        if k > top:
            shutil.rmtree(folder)  # checked above: an export share-search wrote
    return out


def rank_folders(export_dir: Path) -> dict[int, Path]:
    """The ``rank-<k>`` entries of an export folder by ``k`` (whoever wrote them)."""
    if not export_dir.exists():
        return {}
    if not export_dir.is_dir():
        raise CheckpointError(f"{export_dir}: exists and is not a folder; exports are written to rank folders inside it")
    found = {}
    for entry in export_dir.iterdir():
        match = RANK_FOLDER.fullmatch(entry.name)
        if match:
            found[int(match.group(1))] = entry
    return dict(sorted(found.items()))


def _ranked_export(run_dir: Path, problem, row, record: TrialRecord, ranking: Mapping[str, Any], separation: str | None = None,
                   race: str | None = None):
    """One leaderboard row's network with its best-validation weights and its metrics."""
    from ..train.loop import evaluate, first_inputs

    trial = record.number
    ckpt = find_checkpoint(run_dir, trial, record.checkpoint)
    plan = _plan_of(record, ckpt)
    model = build_model(config_from_dict(plan["arch"]), problem.backbone, problem.tasks)
    load_weights_into(model, ckpt / WEIGHTS)
    model.eval()
    batch_size = int(plan["train"].get("batch_size") or EVAL_BATCH)  # as the trial evaluated: a dense split's 256 outputs at once may not fit
    metrics = {
        "rank": int(row["rank"]),
        "trial": trial,
        "epoch": record.best_epoch,
        "family": row["family"],
        "arch": row["arch"],
        "params": count_parameters(model),
        "macs": count_macs(model, problem.backbone.input_shape),
        "delta_m": None if row.get("delta_m") is None or row.get("delta_m") != row.get("delta_m") else float(row["delta_m"]),
        **ranking,
        "val": evaluate(model, problem.data.val, problem.tasks, batch_size),
        "test": evaluate(model, problem.data.test, problem.tasks, batch_size),
        "seeds": seeds_of_row(row, record, separation),
        "race": race,  # the confirmation race's line (search.confirm), None without one
    }
    return model, plan, metrics, first_inputs(problem.data.val, 8)


def seeds_of_row(row, record: TrialRecord, separation: str | None) -> dict[str, Any]:
    """The seeds behind a leaderboard row, for ``metrics.json`` and the model card."""

    def number(value):
        return None if value is None or pd.isna(value) else value

    tied = number(row.get("tied_with_best"))
    return {
        "n": int(number(row.get("n_seeds")) or 1),
        "weights_seed": record.plan.seed,
        "delta_m_se": number(row.get("delta_m.se")),
        "tied_with_best": None if tied is None else bool(tied),
        "p_vs_best": number(row.get("p_vs_best")),
        "separation": separation if int(row["rank"]) == 1 else None,
    }


def _plan_of(record: TrialRecord, checkpoint: Path) -> dict[str, Any]:
    """What the trial trained, as the record keeps it; a trial recorded before the study
    kept its training values has them only in its checkpoint's ``trial.json``."""
    if record.plan.arch is not None and record.plan.train is not None:
        return {"arch": dict(record.plan.arch), "train": dict(record.plan.train)}
    return json.loads((checkpoint / TRIAL_FILE).read_text())["plan"]
