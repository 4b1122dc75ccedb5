"""Task heads: linear for per-sample tasks (unchanged), DeepLab's ASPP or an FCN head for dense
ones (upsampled to the input's size), their registry, and the spec's ``tasks.<t>.head``."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import share_search as ss
from share_search.arch.backbones import make_backbone, make_head
from share_search.arch.heads import ASPP, check_task_head, deeplab, fcn, linear, task_head
from share_search.errors import SpecError
from share_search.spec.heads import DENSE_TASK_TYPES, default_head
from share_search.spec.model import load_spec, parse_spec
from share_search.spec.registry import HEADS, create_head, list_heads, register_head
from share_search.train.problem import load_problem
from share_search.train.tasks import Task

from ..runs import small_spec, write_spec

torch.set_num_threads(1)


def test_dense_task_types_and_their_default_heads():
    assert DENSE_TASK_TYPES == ("segmentation", "depth", "normals", "binary_dense")
    assert {t: default_head(t) for t in ("multiclass", "binary", "regression", *DENSE_TASK_TYPES)} == {
        "multiclass": "linear", "binary": "linear", "regression": "linear",
        "segmentation": "deeplab", "depth": "deeplab", "normals": "deeplab", "binary_dense": "deeplab",
    }


@pytest.mark.parametrize("head", ["deeplab", "fcn"])
@pytest.mark.parametrize("input_shape,feature", [((3, 64, 64), (32, 8, 8)), ((3, 64, 64), (32, 2, 2)), ((3, 40, 24), (16, 5, 3)), ((48, 40), (16, 6, 5))])
def test_a_dense_head_predicts_every_pixel_of_the_input(head, input_shape, feature):
    """Feature maps at 1/8 and 1/32 of the input (and one not an exact fraction) come back at the input's size."""
    module = create_head(head, feature, 5, input_shape, channels=8)
    module.train()
    out = module(torch.randn(2, *feature))
    assert tuple(out.shape) == (2, 5, *input_shape[-2:])
    out.sum().backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in module.parameters())


def test_a_dense_head_trains_on_a_batch_of_one():
    """DeepLabv3's image-pooling branch has a BatchNorm on a 1x1 map, which a batch of one breaks; ours has none."""
    module = deeplab((16, 4, 4), 3, (3, 32, 32), channels=8).train()
    assert tuple(module(torch.randn(1, 16, 4, 4)).shape) == (1, 3, 32, 32)


def test_deeplab_is_aspp_then_a_classifier():
    """1x1 + one dilated 3x3 branch per rate + image pooling, concatenated, a 1x1 projection; then 3x3, 1x1 classifier."""
    module = deeplab((32, 8, 8), 7, (3, 64, 64), channels=16, rates=(2, 4, 6))
    aspp, conv, classifier = module.decoder
    assert isinstance(aspp, ASPP)
    convs = [b[0] for b in aspp.branches]
    assert [(c.kernel_size, c.dilation) for c in convs] == [((1, 1), (1, 1)), ((3, 3), (2, 2)), ((3, 3), (4, 4)), ((3, 3), (6, 6))]
    assert isinstance(aspp.pooling[0], nn.AdaptiveAvgPool2d)
    assert aspp.project[0].in_channels == 5 * 16 and aspp.project[0].kernel_size == (1, 1)
    assert conv[0].kernel_size == (3, 3) and (classifier.kernel_size, classifier.out_channels) == ((1, 1), 7)
    assert deeplab((32, 8, 8), 7, (3, 64, 64)).decoder[0].branches[1][0].out_channels == 256  # the paper's width by default


def test_fcn_is_one_conv_then_a_classifier():
    module = fcn((32, 8, 8), 4, (3, 64, 64))
    (block, classifier) = module.decoder
    assert block[0].kernel_size == (3, 3) and block[0].out_channels == 8 and classifier.out_channels == 4


@pytest.mark.parametrize("head", [deeplab, fcn])
def test_a_dense_head_on_a_vector_says_it_needs_a_feature_map(head):
    with pytest.raises(ValueError, match=r"decodes a feature map \(C, H, W\), but the backbone's last stage gives shape \(64,\)"):
        head((64,), 3, (3, 32, 32))


def test_the_linear_head_is_the_one_every_family_had():
    """Same modules, same state-dict keys, same initial weights: per-sample results do not change."""
    torch.manual_seed(0)
    before = nn.Sequential(nn.Flatten(), nn.Linear(8 * 2 * 2, 3))
    torch.manual_seed(0)
    now = linear((8, 2, 2), 3, (3, 16, 16))
    torch.manual_seed(0)
    task = task_head(Task("a", "a", "multiclass", 3, "accuracy"), make_backbone("convnet", (1, 8, 8), {"channels": (2, 8), "hidden": 32}))
    assert before.state_dict().keys() == now.state_dict().keys() == {"1.weight", "1.bias"}
    assert all(torch.equal(before.state_dict()[k], now.state_dict()[k]) for k in ("1.weight", "1.bias"))
    assert [type(m) for m in task] == [nn.Flatten, nn.Linear] and task[1].in_features == 32
    assert [type(m) for m in make_head((8, 2, 2), 3)] == [nn.Flatten, nn.Linear]


def test_the_linear_head_can_pool_a_feature_map_first():
    head = linear((512, 7, 7), 10, (3, 224, 224), pool=True)
    assert head[-1].in_features == 512
    x = torch.randn(2, 512, 7, 7)
    assert torch.allclose(head(x), head[-1](x.mean((2, 3))))


# --------------------------------------------------------------------------- the registry
def test_heads_have_the_registry_shape():
    assert list_heads() == ["deeplab", "fcn", "linear"]
    assert HEADS.kind in ss.spec.registry.REGISTRIES
    with pytest.raises(ValueError, match="head 'fcn' is already registered"):
        register_head("fcn")(lambda *a, **k: None)
    with pytest.raises(KeyError, match=r"unknown head 'nope' \(known: linear, deeplab, fcn\)"):
        create_head("nope", (4,), 2, (4,))


def test_a_registered_head_is_accepted_by_the_spec_and_built_for_its_task():
    def doubled(in_shape, n_outputs, input_shape, scale=2.0):
        return nn.Sequential(nn.Flatten(), nn.Linear(in_shape[0], n_outputs), _Scale(scale))

    doubled.dense = False
    register_head("doubled")(doubled)
    try:
        spec = parse_spec(small_spec(tasks={"digit": {"head": {"name": "doubled", "scale": 3.0}}, "odd": {}}))
        assert spec.tasks["digit"].head.name == "doubled" and spec.tasks["digit"].head.options == {"scale": 3.0}
        problem = load_problem(spec)
        digit = next(t for t in problem.tasks if t.name == "digit")
        assert (digit.head, digit.head_options) == ("doubled", {"scale": 3.0})
        assert task_head(digit, problem.backbone)[-1].scale == 3.0
    finally:
        HEADS.unregister("doubled")


class _Scale(nn.Module):
    def __init__(self, scale):
        super().__init__()
        self.scale = scale

    def forward(self, x):
        return x * self.scale


# --------------------------------------------------------------------------- tasks.<t>.head
def test_the_head_key_takes_a_name_or_a_name_with_options_and_writes_them_back(tmp_path):
    spec = parse_spec(small_spec(tasks={"digit": {"head": "linear"}, "odd": {"head": {"name": "linear", "pool": True}}}))
    assert spec.tasks["digit"].head.name == "linear" and spec.tasks["digit"].head.options == {}
    assert spec.tasks["odd"].head.options == {"pool": True}
    dumped = spec.to_dict()["tasks"]
    assert dumped["digit"]["head"] == "linear" and dumped["odd"]["head"] == {"name": "linear", "pool": True}
    again = load_spec(write_spec(tmp_path / "again.yaml", spec.to_dict()))
    assert again.tasks == spec.tasks
    assert parse_spec(small_spec()).tasks["digit"].head is None


@pytest.mark.parametrize(
    "head,message",
    [
        ("unet", r"tasks.digit.head: unknown head 'unet' \(known: linear, deeplab, fcn\)"),
        ({"channels": 3}, r"tasks.digit.head: expected a head's name or \{name: NAME, <option>: VALUE, ...\}, got \{'channels': 3\}"),
        (3, r"tasks.digit.head: expected a head's name or"),
    ],
)
def test_a_bad_head_key_is_a_spec_error_naming_it(head, message):
    with pytest.raises(SpecError, match=message):
        parse_spec(small_spec(tasks={"digit": {"head": head}, "odd": {}}))


@pytest.mark.parametrize(
    "head,message",
    [
        ("deeplab", r"tasks.digit.head: head 'deeplab' is for dense \(per-pixel\) tasks, but 'digit' is a multiclass task \(its default head: 'linear'\)"),
        ({"name": "linear", "width": 3}, r"tasks.digit.head: linear: .*unexpected keyword argument 'width'"),
    ],
)
def test_a_head_that_does_not_fit_is_refused_before_any_trial(head, message):
    with pytest.raises(SpecError, match=message):
        load_problem(parse_spec(small_spec(tasks={"digit": {"head": head}, "odd": {}})))


def test_a_per_sample_task_on_a_resnet_encoder_may_pool_before_its_linear_head():
    spec = parse_spec(small_spec(tasks={"digit": {"head": {"name": "linear", "pool": True}}, "odd": {}}, backbone={"name": "resnet18"}))
    problem = load_problem(spec)
    digit, odd = problem.tasks
    assert task_head(digit, problem.backbone)[-1].in_features == 512
    check_task_head(odd, problem.backbone)


# --------------------------------------------------------------------------- export and reload
def _export(tmp_path, tasks):
    from share_search.arch import build_model
    from share_search.arch.tree import TreeConfig
    from share_search.runs.export import write_export

    backbone = make_backbone("resnet18", (3, 16, 16))
    arch = TreeConfig.hard_sharing([t.name for t in tasks], backbone.n_stages)
    torch.manual_seed(0)
    model = build_model(arch, backbone, tasks)
    return write_export(
        tmp_path / "rank-1", model=model, plan_dict={"arch": arch.to_dict(), "train": {}}, tasks=tuple(tasks), backbone=backbone,
        spec_dict={"name": "t"}, metrics={"rank": 1, "trial": 0, "val": {}, "test": {}}, example_x=torch.randn(2, 3, 16, 16),
    ), model


def test_an_exported_model_keeps_its_heads_and_predicts_at_the_inputs_size(tmp_path):
    from share_search.runs.export import load_model

    tasks = [Task("digit", "digit", "multiclass", 4, "accuracy"), Task("mask", "mask", "regression", 2, "mae", head="fcn", head_options={"channels": 4})]
    folder, model = _export(tmp_path, tasks)
    loaded = load_model(folder)
    x = torch.randn(3, 3, 16, 16)
    with torch.no_grad():
        expected, got = model.eval()(x), loaded(x)
    assert tuple(got["mask"].shape) == (3, 2, 16, 16) and all(torch.equal(expected[k], got[k]) for k in expected)
    assert loaded.tasks[1].head == "fcn" and loaded.tasks[1].head_options == {"channels": 4}


def test_a_recipe_naming_an_unregistered_head_is_refused(tmp_path):
    import json

    from share_search.errors import CheckpointError
    from share_search.runs.export import load_model, write_manifest

    folder, _ = _export(tmp_path, [Task("a", "a", "multiclass", 4, "accuracy"), Task("b", "b", "binary", 1, "accuracy")])
    recipe = json.loads((folder / "recipe.json").read_text())
    recipe["tasks"][1]["head"] = "not_here"
    (folder / "recipe.json").write_text(json.dumps(recipe))
    write_manifest(folder)
    with pytest.raises(CheckpointError, match=r"recipe.json: not a share-search recipe \(ValueError: task 'b': head 'not_here' with options \{\} is no registered head here"):
        load_model(folder)
