"""Attack: a ``backbone.weights`` .pt whose unpickling runs code (here: creates a marker file).

share-search reads a .pt with ``torch.load(weights_only=True)``, which builds tensors and
plain containers only: the payload is refused with a one-line error and never runs. The
same file, unpickled the unsafe way, does create the marker: the payload is real.
"""

from __future__ import annotations

import subprocess

import pytest
import torch

from share_search.arch.backbones import make_backbone
from share_search.errors import SpecError

from ..runs import cli_command, cli_env, small_spec, write_spec


class _Payload:
    """Unpickled, this calls ``open(marker, "w")``: the file appears."""

    def __init__(self, marker: str):
        self.marker = marker

    def __reduce__(self):
        return (open, (self.marker, "w"))


def _tampered(tmp_path):
    marker = tmp_path / "pwned"
    path = tmp_path / "resnet18.pt"
    torch.save({"conv1.weight": torch.zeros(64, 3, 7, 7), "bn1.weight": _Payload(str(marker))}, path)
    return path, marker


def test_a_pickle_payload_in_a_weights_file_never_runs(tmp_path):
    path, marker = _tampered(tmp_path)
    with pytest.raises(SpecError, match=rf"backbone.weights: {path}: refused: unpickling it would build more than tensors \(Unsupported global: GLOBAL io.open was not an allowed global by default.\); a .pt is read with weights_only=True"):
        make_backbone("resnet18", (3, 32, 32), weights=str(path))
    assert not marker.exists()
    torch.load(path, weights_only=False)  # what an unsafe loader would do
    assert marker.exists()


def test_the_cli_refuses_the_tampered_file_with_exit_2_and_runs_nothing(tmp_path):
    path, marker = _tampered(tmp_path)
    spec = write_spec(tmp_path / "s.yaml", small_spec(backbone={"name": "resnet18", "weights": path.name}))
    proc = subprocess.run(cli_command("validate", str(spec)), env=cli_env(), capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2 and not marker.exists(), proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr and f"backbone.weights: {path}: refused: unpickling it would build more than tensors" in proc.stderr
