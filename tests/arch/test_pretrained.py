"""``backbone.weights``: a local safetensors file or PyTorch state dict, matched to the stages,
that every copy a family builds starts from; clear errors for files that do not fit."""

from __future__ import annotations

import subprocess

import pytest
import torch
import torchvision
from safetensors.torch import save_file
from torch import nn

from share_search.arch import FAMILIES
from share_search.arch.backbones import make_backbone
from share_search.arch.cross_stitch import CrossStitchConfig
from share_search.arch.progressive import ProgressiveConfig
from share_search.arch.tree import TreeConfig
from share_search.errors import SpecError
from share_search.spec.model import load_spec
from share_search.train.tasks import Task

from ..runs import cli_command, cli_env, small_spec, write_spec

torch.set_num_threads(1)

SHAPE = (3, 32, 32)


def _source(depth: int = 18, seed: int = 0) -> nn.Module:
    """A torchvision ResNet with random weights and non-trivial BatchNorm statistics (a stand-in for ImageNet's)."""
    torch.manual_seed(seed)
    net = getattr(torchvision.models, f"resnet{depth}")(weights=None)
    for m in net.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.uniform_(-0.5, 0.5)
            m.running_var.uniform_(0.5, 2.0)
            m.weight.data.uniform_(0.5, 1.5)
            m.bias.data.uniform_(-0.2, 0.2)
    return net.eval()


def _save(net: nn.Module, path, kind: str):
    state = {k: v.contiguous() for k, v in net.state_dict().items()}
    if kind == "safetensors":
        save_file(state, str(path))
    else:
        torch.save(state, path)
    return path


def _intermediates(net: nn.Module, x: torch.Tensor) -> list[torch.Tensor]:
    """The source model's own outputs after layer1..layer4."""
    h = net.maxpool(net.relu(net.bn1(net.conv1(x))))
    out = []
    for layer in (net.layer1, net.layer2, net.layer3, net.layer4):
        h = layer(h)
        out.append(h)
    return out


@pytest.fixture(scope="module")
def source():
    return _source()


@pytest.mark.parametrize("kind,suffix", [("safetensors", ".safetensors"), ("torch", ".pt"), ("torch", ".pth")])
def test_loaded_stages_give_the_source_models_intermediate_outputs_exactly(source, tmp_path, kind, suffix):
    path = _save(source, tmp_path / f"resnet18{suffix}", kind)
    backbone = make_backbone("resnet18", SHAPE, weights=str(path))
    x = torch.randn(2, *SHAPE)
    with torch.no_grad():
        expected = _intermediates(source, x)
        h, got = x, []
        for stage in backbone.build_stages():
            h = stage.eval()(h)
            got.append(h)
    assert all(torch.equal(a, b) for a, b in zip(got, expected)) and len(got) == 4
    assert backbone.weights_note == f"{path}: loaded 120 tensors into 4 stages; ignored 2 of modules no stage has: fc.bias, fc.weight"


@pytest.mark.parametrize("family,config", [
    ("tree", TreeConfig(stages=((("a", "b", "c"),), (("a", "b"), ("c",)), (("a",), ("b",), ("c",)), (("a",), ("b",), ("c",))))),
    ("cross_stitch", CrossStitchConfig(stages=(0, 2))),
    ("progressive", ProgressiveConfig(order=("b", "a", "c"), lateral_stages=(1, 3))),
])
def test_every_copy_a_family_builds_starts_from_the_loaded_weights(source, tmp_path, family, config):
    backbone = make_backbone("resnet18", SHAPE, weights=str(_save(source, tmp_path / "r18.safetensors", "safetensors")))
    tasks = [Task(n, n, "multiclass", 3, "accuracy") for n in "abc"]
    model = FAMILIES[family].build(config, backbone, tasks)
    expected = source.state_dict()
    copies = {  # stage index -> every copy of it in the network
        "tree": lambda i: list(model.stages[i].values()),
        "cross_stitch": lambda i: list(model.stages[i].copies),
        "progressive": lambda i: [column[i] for column in model.columns],
    }[family]
    n_copies = 0
    for i in range(4):
        for stage in copies(i):
            n_copies += 1
            state = stage.state_dict()
            assert state and all(torch.equal(v, expected[k]) for k, v in state.items())
    assert n_copies == {"tree": 1 + 2 + 3 + 3, "cross_stitch": 12, "progressive": 12}[family]


def test_stage_indexed_keys_load_stages_that_share_names(tmp_path):
    """A user's stages as plain nn.Sequential all have ``0.weight``: the file names them ``<stage>.<key>``."""
    torch.manual_seed(3)
    source = make_backbone("mlp", (6,), {"widths": (5, 4, 3)})
    stages = source.build_stages()
    path = tmp_path / "mlp.safetensors"
    save_file(nn.Sequential(*stages).state_dict(), str(path))
    loaded = make_backbone("mlp", (6,), {"widths": (5, 4, 3)}, weights=str(path)).build_stages()
    x = torch.randn(4, 6)
    assert torch.equal(nn.Sequential(*loaded)(x), nn.Sequential(*stages)(x))


def test_a_file_of_another_network_lists_the_missing_and_unexpected_keys(tmp_path):
    path = _save(_source(34), tmp_path / "resnet34.pt", "torch")
    with pytest.raises(SpecError) as info:
        make_backbone("resnet18", SHAPE, weights=str(path))
    message = str(info.value)
    assert message.startswith(f"backbone.weights: {path}: the file's keys do not fit the backbone's 4 stages: unexpected layer1.2.conv1.weight, ")
    assert "and 88 more" in message and "fc.weight" not in message


def test_missing_keys_and_shapes_are_listed(source, tmp_path):
    state = {k: v for k, v in source.state_dict().items() if not k.startswith("layer4.1.")}
    path = tmp_path / "partial.safetensors"
    save_file(state, str(path))
    with pytest.raises(SpecError, match=r"backbone.weights: .*partial.safetensors: the file's keys do not fit the backbone's 4 stages: missing layer4.1.conv1.weight, layer4.1.bn1.weight, "):
        make_backbone("resnet18", SHAPE, weights=str(path))
    grey = tmp_path / "rgb.pt"
    _save(source, grey, "torch")
    with pytest.raises(SpecError, match=r"of another shape conv1.weight \(64, 3, 7, 7\) \(the stage's: \(64, 1, 7, 7\)\)"):
        make_backbone("resnet18", (1, 32, 32), weights=str(grey))


@pytest.mark.parametrize(
    "content,message",
    [
        (lambda p: torch.save([torch.zeros(2)], p), "expected a state dict \\(parameter name -> tensor\\), got list"),
        (lambda p: p.write_bytes(b"not a checkpoint"), "not a safetensors file or a plain PyTorch state dict"),
        (lambda p: None, "no such file"),
    ],
)
def test_a_file_that_is_no_state_dict_is_a_spec_error(tmp_path, content, message):
    path = tmp_path / "w.pt"
    content(path)
    with pytest.raises(SpecError, match=rf"backbone.weights: {path}: {message}"):
        make_backbone("resnet18", SHAPE, weights=str(path))


def test_a_checkpoint_wrapping_its_state_dict_is_read(source, tmp_path):
    path = tmp_path / "ckpt.pt"
    torch.save({"state_dict": source.state_dict(), "epoch": 90}, path)
    assert make_backbone("resnet18", SHAPE, weights=str(path)).weights is not None


def test_the_weights_path_is_relative_to_the_specs_folder(tmp_path):
    spec_path = write_spec(tmp_path / "specs" / "s.yaml", small_spec(backbone={"name": "resnet18", "weights": "../w/r18.pt"}))
    assert load_spec(spec_path).backbone.weights == str(tmp_path / "w" / "r18.pt")


def test_the_cli_refuses_a_file_that_does_not_fit_with_exit_2(source, tmp_path):
    """digits are grey 8x8 images: ImageNet's 3-channel conv1 cannot load into a 1-channel stage."""
    _save(source, tmp_path / "r18.safetensors", "safetensors")
    spec_path = write_spec(tmp_path / "s.yaml", small_spec(backbone={"name": "resnet18", "weights": "r18.safetensors"}))
    proc = subprocess.run(cli_command("validate", str(spec_path)), env=cli_env(), capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in proc.stderr
    assert f"backbone.weights: {tmp_path / 'r18.safetensors'}: the file's keys do not fit the backbone's 4 stages: of another shape conv1.weight" in lines[0]


def test_validate_says_what_was_loaded_and_what_was_ignored(tmp_path):
    """digits are grey: a checkpoint of a 1-channel ResNet-18 (its classifier too) fits, and ``fc.*`` is said to be ignored."""
    from share_search.arch.encoders import resnet18

    state = {k: v for stage in resnet18((1, 8, 8)) for k, v in stage.state_dict().items()}
    save_file({**state, "fc.weight": torch.zeros(10, 512), "fc.bias": torch.zeros(10)}, str(tmp_path / "grey.safetensors"))
    spec_path = write_spec(tmp_path / "s.yaml", small_spec(backbone={"name": "resnet18", "weights": "grey.safetensors"}))
    proc = subprocess.run(cli_command("validate", str(spec_path)), env=cli_env(), capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert f"backbone.weights: {tmp_path / 'grey.safetensors'}: loaded 120 tensors into 4 stages; ignored 2 of modules no stage has: fc.bias, fc.weight" in proc.stdout
