import subprocess
import sys

import pytest
import torch
from torch import nn

from share_search.arch import count_macs, count_parameters

from .shared import flop_counter_macs

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


class _Attention(nn.Module):
    """Matrix products outside ``nn.Linear``: an einsum and attention, a composite op."""

    def __init__(self):
        super().__init__()
        self.proj = nn.Linear(8, 24)

    def forward(self, x):
        q, k, v = self.proj(x).chunk(3, dim=-1)
        mixed = torch.einsum("btc,bsc->bts", q, k) @ v
        return mixed + nn.functional.scaled_dot_product_attention(q, k, v)


def test_matrix_products_outside_layers_match_torchs_flop_counter():
    model = _Attention()
    assert count_macs(model, (5, 8)) == flop_counter_macs(model, (5, 8)) > 5 * 8 * 24


def test_counting_macs_does_not_import_torch_dynamo():
    """The driver counts MACs when exporting; importing torch._dynamo would cost it 1.5-2 s."""
    script = (
        "import sys\n"
        "from torch import nn\n"
        "from share_search.arch import count_macs\n"
        "assert count_macs(nn.Linear(4, 3), (4,)) == 12\n"
        "print('torch._dynamo' in sys.modules)\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "False"
