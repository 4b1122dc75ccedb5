"""Pretrained encoder weights from a local file (``backbone.weights``), matched to the stages.

The file is a safetensors file or a PyTorch state dict; a ``.pt`` is read with
``torch.load(weights_only=True)``, which builds tensors and plain containers only, so a
file that would run code when unpickled is refused. Nothing is ever downloaded.

Keys are matched to the stages' own parameter and buffer names: the built-in encoders name
their modules as the source model does (torchvision's ``conv1.weight``, ``layer1.0...``),
and when two stages share a name (a user's stages as plain ``nn.Sequential``), the keys are
``<stage>.<name>`` as ``nn.Sequential(*stages).state_dict()`` writes them. timm's feature
extractors rename ``stages.0`` to ``stages_0``: a key is also tried with its first ``.`` as
``_``. Keys under modules no stage has (a classifier: torchvision's ``fc.*``) are ignored and
reported; a key missing from the file, or an unexpected one under a stage's module, is an
error that lists them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping, Sequence

import torch
from torch import nn

from ..errors import SpecError

KEY = "backbone.weights"
SHOWN_KEYS = 8  # keys listed in an error or a note before "and N more"
WRAPPERS = ("state_dict", "model")  # checkpoints that nest the state dict under one of these


@dataclass(frozen=True)
class StageWeights:
    """Per stage, the tensors its ``load_state_dict`` takes; ``note`` says what was loaded and ignored."""

    per_stage: tuple[dict[str, torch.Tensor], ...]
    note: str


def read_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """The tensors of a local safetensors file or PyTorch state dict (``weights_only``)."""
    path = Path(path)
    if not path.is_file():
        raise SpecError(KEY, f"{path}: no such file (weights are read from a local file, never downloaded)")
    try:
        if path.suffix.lower() == ".safetensors":
            from safetensors.torch import load_file

            state = load_file(str(path), device="cpu")
        else:
            state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # safetensors' and the unpickler's errors have no common base
        detail = _why_not_loaded(exc)
        if detail.startswith("Unsupported global"):
            raise SpecError(
                KEY, f"{path}: refused: unpickling it would build more than tensors ({detail}); "
                "a .pt is read with weights_only=True, so save a plain state dict or a safetensors file",
            ) from None
        raise SpecError(KEY, f"{path}: not a safetensors file or a plain PyTorch state dict (read with weights_only=True): {detail}") from None
    return _tensors(state, path)


def _why_not_loaded(exc: Exception) -> str:
    """One line: the weights-only unpickler's own reason when it refused, else the error's first line."""
    text = str(exc)
    refused = re.search(r"WeightsUnpickler error:(.*?)(?:Please use|Check the documentation|$)", text, re.S)
    line = " ".join(refused.group(1).split()) if refused else (text.strip().splitlines() or [type(exc).__name__])[0]
    return line[:300] or type(exc).__name__


def _tensors(state, path: Path) -> dict[str, torch.Tensor]:
    if isinstance(state, Mapping):
        for wrapper in WRAPPERS:
            if set(state) - {wrapper} <= {"epoch", "optimizer", "args"} and isinstance(state.get(wrapper), Mapping):
                state = state[wrapper]
                break
    if not isinstance(state, Mapping) or not all(isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in state.items()):
        raise SpecError(KEY, f"{path}: expected a state dict (parameter name -> tensor), got {type(state).__name__}")
    return dict(state)


def match_to_stages(state: Mapping[str, torch.Tensor], stages: Sequence[nn.Module], path: str | Path) -> StageWeights:
    """Assign the file's tensors to the stages; raise listing missing and unexpected keys."""
    own = [stage.state_dict() for stage in stages]
    names = [k for sd in own for k in sd]
    indexed = [f"{i}.{k}" for i, sd in enumerate(own) for k in sd]
    plain = len(names) == len(set(names)) and (any(_in_file(k, state) for k in names) or not any(k in state for k in indexed))
    wanted = {(k if plain else f"{i}.{k}"): (i, k) for i, sd in enumerate(own) for k in sd}
    per_stage: list[dict[str, torch.Tensor]] = [{} for _ in stages]
    used, missing, bad_shape = set(), [], []
    for name, (i, k) in wanted.items():
        key = _in_file(name, state)
        if key is None:
            missing.append(name)
            continue
        used.add(key)
        if state[key].shape != own[i][k].shape:
            bad_shape.append(f"{key} {tuple(state[key].shape)} (the stage's: {tuple(own[i][k].shape)})")
        per_stage[i][k] = state[key]
    modules = {m for n in wanted for m in _spellings(n.split(".")[0])}
    left = [k for k in state if k not in used]
    unexpected = [k for k in left if _top(k) in modules]
    ignored = sorted(k for k in left if _top(k) not in modules)
    if missing or unexpected or bad_shape:
        problems = [f"{what} {_listed(keys)}" for what, keys in (("missing", missing), ("unexpected", unexpected), ("of another shape", bad_shape)) if keys]
        raise SpecError(KEY, f"{path}: the file's keys do not fit the backbone's {len(stages)} stages: " + "; ".join(problems))
    note = f"{path}: loaded {len(used)} tensors into {len(stages)} stages"
    if ignored:
        note += f"; ignored {len(ignored)} of modules no stage has: {_listed(ignored)}"
    return StageWeights(tuple(per_stage), note)


def load_stage_weights(path: str | Path, stages: Sequence[nn.Module]) -> StageWeights:
    return match_to_stages(read_state_dict(path), stages, path)


def _in_file(name: str, state: Mapping[str, torch.Tensor]) -> str | None:
    """The file's key for a stage's ``name``: itself, or timm's flattened ``a_b.x`` as ``a.b.x``."""
    if name in state:
        return name
    top, dot, rest = name.partition(".")
    for i, ch in enumerate(top):
        if ch == "_":
            candidate = f"{top[:i]}.{top[i + 1:]}{dot}{rest}"
            if candidate in state:
                return candidate
    return None


def _top(key: str) -> str:
    return key.split(".")[0]


def _spellings(module: str) -> set[str]:
    """A stage's top module and the first module of each way the file may spell it (``stages_0``: ``stages``)."""
    return {module} | {module[:i] for i, ch in enumerate(module) if ch == "_"}


def _listed(keys: Sequence[str]) -> str:
    shown = ", ".join(keys[:SHOWN_KEYS])
    return shown + (f" and {len(keys) - SHOWN_KEYS} more" if len(keys) > SHOWN_KEYS else "")
