"""The built-in encoders as stages (torchvision ResNets, timm feature extractors), every family
built on them, and ``train.encoder_lr_mult`` reaching each family's optimizer groups."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys

import pytest
import torch
import torchvision

from share_search.arch import FAMILIES
from share_search.arch.backbones import make_backbone
from share_search.arch.cross_stitch import CrossStitchConfig
from share_search.arch.progressive import ProgressiveConfig
from share_search.arch.tree import TreeConfig
from share_search.errors import SpecError
from share_search.spec.model import TrainConfig, parse_spec
from share_search.train.loop import _make_optimizer, model_phases
from share_search.train.tasks import Task
from share_search.train.weighting import make_weighting

from ..runs import cli_env, small_spec

torch.set_num_threads(1)

SHAPE = (3, 32, 32)
TASKS = [
    Task("digit", "digit", "multiclass", 4, "accuracy"),
    Task("odd", "odd", "binary", 1, "accuracy"),
    Task("mask", "mask", "regression", 3, "mae", head="fcn", head_options={"channels": 8}),  # a dense head
]
NAMES = [t.name for t in TASKS]
CONFIGS = {  # every family, each placing something on the encoder's feature maps
    "tree": TreeConfig(stages=((tuple(NAMES),), (tuple(NAMES),), (("digit", "odd"), ("mask",)), (("digit",), ("odd",), ("mask",)))),
    "cross_stitch": CrossStitchConfig(stages=(1, 3)),
    "progressive": ProgressiveConfig(order=("mask", "digit", "odd"), lateral_stages=(1, 2, 3)),
}


@pytest.fixture(scope="module")
def resnet18():
    return make_backbone("resnet18", SHAPE)


@pytest.mark.parametrize(
    "name,output_stride,shapes",
    [
        ("resnet18", 32, [(64, 8, 8), (128, 4, 4), (256, 2, 2), (512, 1, 1)]),
        ("resnet18", 16, [(64, 8, 8), (128, 4, 4), (256, 2, 2), (512, 2, 2)]),
        ("resnet18", 8, [(64, 8, 8), (128, 4, 4), (256, 4, 4), (512, 4, 4)]),
        ("resnet34", 8, [(64, 8, 8), (128, 4, 4), (256, 4, 4), (512, 4, 4)]),
        ("resnet50", 16, [(256, 8, 8), (512, 4, 4), (1024, 2, 2), (2048, 2, 2)]),
    ],
)
def test_resnets_are_four_stages_at_their_output_stride(name, output_stride, shapes):
    backbone = make_backbone(name, SHAPE, {"output_stride": output_stride})
    assert [tuple(s) for s in backbone.stage_shapes] == shapes


@pytest.mark.parametrize("output_stride,dilate", [(16, [False, False, True]), (8, [False, True, True])])
def test_dilated_resnet50_is_torchvisions_replace_stride_with_dilation(output_stride, dilate):
    """Same weights, same output: the stages dilate as torchvision's own option does."""
    from share_search.arch.encoders import resnet50

    stages = resnet50(SHAPE, output_stride)
    reference = torchvision.models.resnet50(weights=None, replace_stride_with_dilation=dilate)
    reference.load_state_dict({k: v for stage in stages for k, v in stage.state_dict().items()}, strict=False)
    x = torch.randn(2, *SHAPE)
    with torch.no_grad():
        h = x
        for stage in stages:
            h = stage.eval()(h)
        expected = torch.nn.Sequential(*list(reference.eval().children())[:-2])(x)
    assert torch.equal(h, expected)


def test_dilated_basic_block_resnet_keeps_resolution_and_dilates():
    from share_search.arch.encoders import resnet18

    stages = resnet18(SHAPE, 8)
    layer4 = stages[3].layer4
    assert layer4[0].conv1.stride == (1, 1) and layer4[0].conv1.dilation == (2, 2) and layer4[1].conv1.dilation == (4, 4)
    assert layer4[0].downsample[0].stride == (1, 1)


@pytest.mark.parametrize("value", [4, 12, "16"])
def test_an_output_stride_other_than_8_16_32_is_a_spec_error(value):
    with pytest.raises(SpecError, match=r"backbone.options.output_stride: must be one of 32, 16, 8, got"):
        make_backbone("resnet18", SHAPE, {"output_stride": value})


@pytest.mark.parametrize("shape", [(32, 32), (1, 32, 32), (4, 32, 32)])
def test_resnets_take_grey_and_other_channel_counts(shape):
    backbone = make_backbone("resnet18", shape)
    assert backbone.stage_shapes[-1] == (512, 1, 1)


@pytest.mark.parametrize("family", sorted(CONFIGS))
def test_every_family_trains_on_resnet18_with_linear_and_dense_heads(family, resnet18):
    torch.manual_seed(0)
    model = FAMILIES[family].build(CONFIGS[family], resnet18, TASKS)
    x = torch.randn(2, *SHAPE)
    out = model(x)
    assert {t: tuple(o.shape) for t, o in out.items()} == {"digit": (2, 4), "odd": (2, 1), "mask": (2, 3, 32, 32)}
    sum(o.pow(2).mean() for o in out.values()).backward()
    stage_grads = [p.grad for p in model.encoder_parameters() if p.grad is not None]
    assert stage_grads and all(torch.isfinite(g).all() for g in stage_grads)


# --------------------------------------------------------------------------- timm
# skipped outside CI without the optional extra; under CI (which installs it with the test extra) never
needs_timm = pytest.mark.skipif(
    importlib.util.find_spec("timm") is None and not os.environ.get("CI"), reason="timm is not installed (pip install 'share-search[timm]')"
)


@needs_timm
@pytest.mark.parametrize("model", ["test_resnet", "test_convnext"])
def test_a_timm_model_gives_one_stage_per_feature_level_with_its_features(model):
    torch.manual_seed(0)
    backbone = make_backbone("timm", SHAPE, {"model": model})
    torch.manual_seed(1)
    stages = backbone.build_stages()
    import timm

    torch.manual_seed(1)
    reference = timm.create_model(model, pretrained=False, features_only=True).eval()
    assert [s[0] for s in backbone.stage_shapes] == reference.feature_info.channels()
    x = torch.randn(2, *SHAPE)
    with torch.no_grad():
        expected = reference(x)
        h, got = x, []
        for stage in stages:
            h = stage.eval()(h)
            got.append(h)
    assert len(got) == len(expected) and all(torch.equal(a, b) for a, b in zip(got, expected))


@needs_timm
def test_cross_stitch_mixes_a_timm_encoders_feature_maps():
    backbone = make_backbone("timm", SHAPE, {"model": "test_convnext"})
    config = CrossStitchConfig(stages=(0, 2))
    out = FAMILIES["cross_stitch"].build(config, backbone, TASKS)(torch.randn(2, *SHAPE))
    assert tuple(out["mask"].shape) == (2, 3, 32, 32) and tuple(out["digit"].shape) == (2, 4)


@needs_timm
@pytest.mark.parametrize(
    "options,key,message",
    [
        ({"model": "test_resnet", "pretrained": True}, "backbone.options.pretrained", "never downloads weights"),
        ({"model": "no_such_net"}, "backbone.options.model", "timm has no model 'no_such_net'"),
        ({"model": "test_efficientnet"}, "backbone.options.model", "cannot be cut into stages"),
    ],
)
def test_timm_options_that_cannot_work_are_spec_errors(options, key, message):
    with pytest.raises(SpecError, match=rf"{key}: .*{message}"):
        make_backbone("timm", SHAPE, options)


def test_without_timm_installed_the_timm_backbone_says_how_to_get_it():
    """A real interpreter where importing timm fails, as on an install without the extra."""
    code = (
        "import sys; sys.modules['timm'] = None\n"
        "from share_search.arch.backbones import make_backbone\n"
        "from share_search.errors import SpecError\n"
        "try:\n    make_backbone('timm', (3, 32, 32), {'model': 'resnet18'})\n"
        "except SpecError as exc:\n    print(exc)\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], env=cli_env(), capture_output=True, text=True, timeout=120)
    assert proc.stdout.strip() == "backbone.name: the timm backbone needs the timm package: pip install 'share-search[timm]'", proc.stderr


# --------------------------------------------------------------------------- train.encoder_lr_mult
LR = 0.01
LR_TASKS = [*TASKS[:2], Task("mask", "mask", "regression", 3, "mae")]


def _lr_of(optimizer) -> dict[int, float]:
    return {id(p): group["lr"] for group in optimizer.param_groups for p in group["params"]}


@pytest.mark.parametrize("family", sorted(CONFIGS))
def test_encoder_lr_mult_puts_the_stages_at_lr_times_mult_and_the_heads_at_lr(family):
    backbone = make_backbone("resnet", (3, 16, 16), {"channels": (4, 8, 8)})
    model = FAMILIES[family].build(CONFIGS[family], backbone, LR_TASKS)
    config = TrainConfig(lr=LR, encoder_lr_mult=0.1, device="cpu")
    phases = model_phases(model, config)
    stages = {id(p) for p in model.encoder_parameters()}
    heads = {id(p) for p in model.heads.parameters()}
    assert stages and heads
    seen = set()
    for phase in phases:
        lr = _lr_of(_make_optimizer(phase, make_weighting(config.weighting, phase.tasks, config), config))
        assert {lr[i] for i in stages & lr.keys()} == {LR * 0.1}
        assert {lr[i] for i in heads & lr.keys()} == {LR}
        seen |= lr.keys()
    assert stages | heads <= seen  # every stage copy and head trains in some phase
    if family == "cross_stitch":
        assert {lr[id(a)] for a in model.alphas.values()} == {LR * model.config.alpha_lr_mult}
    if family == "progressive":
        assert {lr[id(p)] for p in model.laterals[-1].parameters()} == {LR}


@pytest.mark.parametrize("family", sorted(CONFIGS))
def test_without_encoder_lr_mult_the_groups_are_as_before(family):
    backbone = make_backbone("resnet", (3, 16, 16), {"channels": (4, 8, 8)})
    model = FAMILIES[family].build(CONFIGS[family], backbone, LR_TASKS)
    phases = model_phases(model, TrainConfig())
    assert [[m for _, m in p.param_groups] for p in phases] == [[m for _, m in p.param_groups] for p in model.phases()]
    assert all(len(p.param_groups) == (2 if family == "cross_stitch" else 1) for p in phases)


def test_encoder_lr_mult_is_a_positive_train_setting():
    spec = parse_spec(small_spec(train={"encoder_lr_mult": 0.1}))
    assert spec.train.concrete({}, seed=0).encoder_lr_mult == 0.1
    assert parse_spec(small_spec()).train.concrete({}, seed=0).encoder_lr_mult == 1.0
    with pytest.raises(SpecError, match=r"train.encoder_lr_mult: "):
        parse_spec(small_spec(train={"encoder_lr_mult": 0}))


def test_a_model_whose_phases_take_no_multiplier_is_refused_only_when_one_is_set():
    from share_search.arch import ArchConfig, MultiTaskModel, Phase

    class Fixed(MultiTaskModel):
        def __init__(self):
            super().__init__(ArchConfig(), ["a"])
            self.layer = torch.nn.Linear(2, 1)

        def phases(self):
            return [Phase(("a",), [(list(self.parameters()), 1.0)])]

    assert len(model_phases(Fixed(), TrainConfig())) == 1
    with pytest.raises(SpecError, match=r"train.encoder_lr_mult: Fixed.phases\(\) takes no encoder_lr_mult, so only 1.0 fits it, got 0.5"):
        model_phases(Fixed(), TrainConfig(encoder_lr_mult=0.5))
