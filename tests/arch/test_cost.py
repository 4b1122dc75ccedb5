import pytest
import torch
from torch import nn

from share_search.arch._cost import count_macs, count_parameters

torch.set_num_threads(1)


def test_linear_macs_and_parameters_match_hand_counts():
    layer = nn.Linear(10, 5)
    assert count_parameters(layer) == 10 * 5 + 5
    assert count_macs(layer, (10,)) == 10 * 5


def test_conv_macs_match_hand_counts():
    conv = nn.Conv2d(3, 8, 3, padding=1)
    assert count_parameters(conv) == 8 * 3 * 3 * 3 + 8
    # one MAC per output element per kernel weight: 8 x 16 x 16 outputs, 3 x 3 x 3 weights each
    assert count_macs(conv, (3, 16, 16)) == 8 * 16 * 16 * 3 * 3 * 3


def test_stacked_layers_add_up_and_frozen_parameters_count():
    model = nn.Sequential(nn.Flatten(), nn.Linear(12, 6), nn.ReLU(), nn.Linear(6, 2))
    model[1].requires_grad_(False)
    assert count_parameters(model) == (12 * 6 + 6) + (6 * 2 + 2)
    assert count_macs(model, (3, 4)) == 12 * 6 + 6 * 2


@pytest.mark.parametrize("training", [True, False])
def test_count_macs_runs_in_eval_mode_and_restores_the_mode(training):
    seen = []
    model = nn.Sequential(nn.Linear(4, 4), nn.BatchNorm1d(4))
    model[1].register_forward_hook(lambda m, *_: seen.append(m.training))
    model.train(training)
    assert count_macs(model, (4,)) == 16  # batch of one: BatchNorm would fail in train mode
    assert seen == [False] and model.training is training
