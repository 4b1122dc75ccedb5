import copy

import pytest
import torch
from torch import nn

from share_search.arch import LoopedStage, StackedStage, stack_stage, stacked, unstacked
from share_search.arch.backbones import make_backbone

from .shared import BACKBONES

torch.set_num_threads(1)
T = 3


def copies_of(make_stage, n=T):
    torch.manual_seed(0)
    return [make_stage() for _ in range(n)]


def run_each(copies, h):
    return torch.stack([c(x) for c, x in zip(copies, unstacked(h))])


STACKABLE = {
    "flatten, linear, relu": lambda: nn.Sequential(nn.Flatten(), nn.Linear(12, 5), nn.ReLU()),
    "linear without bias, gelu": lambda: nn.Sequential(nn.Linear(12, 5, bias=False), nn.GELU()),
    "a bare linear": lambda: nn.Linear(12, 5),
    "leaky relu, linear, tanh": lambda: nn.Sequential(nn.LeakyReLU(0.3), nn.Linear(12, 5), nn.Tanh()),
}


@pytest.mark.parametrize("make_stage", STACKABLE.values(), ids=STACKABLE.keys())
def test_a_stacked_stage_computes_what_each_copy_computes(make_stage):
    copies = copies_of(make_stage)
    stage = stack_stage(copies)
    assert isinstance(stage, StackedStage)
    h = torch.randn(T, 4, 12)
    if isinstance(copies[0], nn.Sequential) and isinstance(copies[0][0], nn.Flatten):
        h = h.view(T, 4, 3, 4)
    torch.testing.assert_close(stage(h), run_each(copies, h))
    torch.testing.assert_close(stage(unstacked(h)), run_each(copies, h))  # a list of columns works too


def test_stacked_gradients_equal_each_copys():
    copies = copies_of(STACKABLE["flatten, linear, relu"])
    stage = stack_stage(copy.deepcopy(copies))
    h = torch.randn(T, 4, 3, 4)
    weights = torch.randn(T, 4, 5)  # a different loss per column, so a mixed-up row shows
    (stage(h) * weights).sum().backward()
    (run_each(copies, h) * weights).sum().backward()
    linear = stage.layers[1]
    for k, c in enumerate(copies):
        torch.testing.assert_close(linear.weight.grad[k], c[1].weight.grad.t())
        torch.testing.assert_close(linear.bias.grad[k, 0], c[1].bias.grad)


def test_the_shared_input_runs_as_an_expanded_view():
    copies = copies_of(STACKABLE["flatten, linear, relu"])
    x = torch.randn(4, 3, 4)
    got = stack_stage(copies)(x.expand(T, *x.shape))
    torch.testing.assert_close(got, torch.stack([c(x) for c in copies]))


def test_column_k_is_a_plain_copy_holding_row_k():
    copies = copies_of(STACKABLE["flatten, linear, relu"])
    stage = stack_stage(copies)
    x = torch.randn(4, 3, 4)
    for k in range(T):
        column = stage.column(k)
        torch.testing.assert_close(column(x), copies[k](x))
        with torch.no_grad():
            column[1].weight.zero_()
        assert stage.layers[1].weight[k].abs().sum() > 0  # a copy: editing it leaves the stage alone


UNSTACKABLE = {
    "convolution": lambda: nn.Sequential(nn.Conv2d(1, 2, 3), nn.ReLU()),
    "batch norm": lambda: nn.Sequential(nn.Linear(12, 5), nn.BatchNorm1d(5)),
    "flatten from dim 2": lambda: nn.Sequential(nn.Flatten(start_dim=2), nn.Linear(4, 5)),
    "a parametrised activation": lambda: nn.Sequential(nn.Linear(12, 5), nn.PReLU()),
}


@pytest.mark.parametrize("make_stage", UNSTACKABLE.values(), ids=UNSTACKABLE.keys())
def test_stages_without_a_batched_form_run_copy_by_copy(make_stage):
    copies = copies_of(make_stage)
    stage = stack_stage(copies)
    assert isinstance(stage, LoopedStage)
    assert list(stage.copies) == copies and stage.column(1) is copies[1]


def test_copies_that_differ_run_copy_by_copy():
    torch.manual_seed(0)
    copies = [nn.Sequential(nn.Linear(4, 5), nn.ReLU()), nn.Sequential(nn.Linear(4, 5), nn.Tanh())]
    stage = stack_stage(copies)
    assert isinstance(stage, LoopedStage)
    h = torch.randn(2, 3, 4)
    torch.testing.assert_close(stacked(stage(h)), run_each(copies, h))


@pytest.mark.parametrize(
    "name,expected",
    [("mlp", [True, True, True]), ("convnet", [False, False, True]), ("resnet", [False, False, False])],
)
def test_which_built_in_stages_run_stacked(name, expected):
    """Linear stages stack, the convnet's fully connected one included; convolutions loop."""
    shape, options = BACKBONES[name]
    backbone = make_backbone(name, shape, options)
    stages = [stack_stage(copies) for copies in zip(*(backbone.build_stages() for _ in range(T)))]
    assert [isinstance(s, StackedStage) for s in stages] == expected
