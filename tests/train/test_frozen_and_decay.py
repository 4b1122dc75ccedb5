"""Frozen means named frozen, and weight decay leaves cross-stitch α alone.

A module is held fixed (eval mode, BatchNorm statistics kept) only when a phase names it
frozen (earlier progressive columns) or the user froze its own parameters; a BatchNorm
without affine weights has no parameter at all and must still learn its statistics.
Cross-stitch α mixes columns and starts near 1 on the diagonal: weight decay must not pull
it towards zero (as the learned loss weights, it is left out of decay).
"""

from __future__ import annotations

import dataclasses

import numpy as np
import torch
from torch import nn

from share_search.arch import build_model
from share_search.arch.backbones import make_backbone
from share_search.arch.cross_stitch import CrossStitchConfig
from share_search.arch.progressive import ProgressiveConfig
from share_search.arch.tree import TreeConfig
from share_search.data import Split
from share_search.train.loop import TrainConfig, fit
from tests.test_train import TASKS, digits  # noqa: F401  (digits: the module's fixture)

NAMES = [t.name for t in TASKS]
CONFIG = TrainConfig(lr=0.01, epochs=2, batch_size=32, device="cpu")


def plain_norm_stages(input_shape, freeze_first_norm: bool = False):
    """Two stages, each Linear -> BatchNorm without affine weights -> ReLU; optionally a first
    stage whose (affine) BatchNorm the user froze, as a pretrained stage would be."""
    first_norm = nn.BatchNorm1d(16, affine=freeze_first_norm)
    if freeze_first_norm:
        first_norm.requires_grad_(False)
    return [
        nn.Sequential(nn.Flatten(), nn.Linear(64, 16), first_norm, nn.ReLU()),
        nn.Sequential(nn.Linear(16, 8), nn.BatchNorm1d(8, affine=False), nn.ReLU()),
    ]


def built(config, **options):
    torch.manual_seed(0)
    backbone = make_backbone("plain_norm", (64,), options, builder=plain_norm_stages)
    return build_model(config, backbone, TASKS)


def running_means(model) -> dict[str, torch.Tensor]:
    return {k: v.clone() for k, v in model.state_dict().items() if k.endswith("running_mean")}


def test_a_batchnorm_without_affine_weights_learns_its_statistics(digits):  # noqa: F811
    model = built(TreeConfig.hard_sharing(NAMES, 2))
    before = running_means(model)
    assert all(torch.equal(v, torch.zeros_like(v)) for v in before.values())
    fit(model, digits, TASKS, CONFIG)
    after = running_means(model)
    assert after.keys() == before.keys() and len(after) == 2
    for key in after:
        assert not torch.equal(after[key], before[key]), f"{key} never moved: the layer was held in eval mode"


def test_a_module_the_user_froze_keeps_its_statistics(digits):  # noqa: F811
    model = built(TreeConfig.hard_sharing(NAMES, 2), freeze_first_norm=True)
    frozen, free = "stages.0.digit+odd.2.running_mean", "stages.1.digit+odd.1.running_mean"
    before = running_means(model)
    fit(model, digits, TASKS, CONFIG)
    after = running_means(model)
    assert torch.equal(after[frozen], before[frozen])
    assert not torch.equal(after[free], before[free])
    assert not any(p.requires_grad for p in model.stages[0]["digit+odd"][2].parameters())  # the user's flags are kept


def test_an_earlier_progressive_column_keeps_its_parameterless_statistics(digits):  # noqa: F811
    model = built(ProgressiveConfig(order=("digit", "odd"), lateral_stages=(1,), lateral="linear"))
    column = ("columns.0.0.2.running_mean", "columns.0.1.1.running_mean")
    seen = []
    result = fit(model, digits, TASKS, CONFIG, report=lambda r: seen.append({k: r.model.state_dict()[k].clone() for k in column}))
    selected = seen[result.best_epochs["digit"] - 1]
    assert all(not torch.equal(selected[k], torch.zeros_like(selected[k])) for k in column)  # learned in its own phase
    for later in seen[2:]:  # phase 2 trains the odd column; the digit column holds its selected statistics
        assert all(torch.equal(later[k], selected[k]) for k in column)


def test_weight_decay_leaves_cross_stitch_alpha_alone(digits):  # noqa: F811
    """No training label: every loss gradient is zero, so only weight decay can move a weight."""
    unlabelled = dataclasses.replace(digits, train=Split(digits.train.x, {k: np.full_like(v, np.nan) for k, v in digits.train.y.items()}))
    torch.manual_seed(0)
    model = build_model(CrossStitchConfig(stages=(0, 1)), make_backbone("mlp", (64,), {"widths": (16, 8)}), TASKS)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    fit(model, unlabelled, TASKS, dataclasses.replace(CONFIG, weight_decay=0.5, epochs=1))
    after = model.state_dict()
    alphas = [k for k in after if k.startswith("alphas.")]
    assert alphas and all(torch.equal(after[k], before[k]) for k in alphas)
    assert not torch.equal(after["stages.0.layers.1.weight"], before["stages.0.layers.1.weight"])  # decay itself is on
