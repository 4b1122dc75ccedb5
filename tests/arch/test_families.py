"""Every registered family x every built-in backbone: build, train a step, save and reload."""

import copy

import pytest
import torch

from share_search.arch import FAMILIES, config_from_dict
from share_search.arch import count_macs, count_parameters
from share_search.arch.backbones import make_backbone
from share_search.spec.registry import get_family_space
from share_search.train.tasks import Task

from .shared import flop_counter_macs

torch.set_num_threads(1)

TASKS = [
    Task("digit", "digit", "multiclass", 10, "accuracy"),
    Task("odd", "odd", "binary", 1, "accuracy"),
    Task("coords", "coords", "regression", 2, "mae"),
]
NAMES = [t.name for t in TASKS]
BACKBONES = {
    "mlp": ((1, 8, 8), {"widths": (16, 16, 8)}),
    "convnet": ((1, 16, 16), {"channels": (4, 8), "hidden": 16}),
    "resnet": ((1, 16, 16), {"channels": (4, 8)}),
}


@pytest.fixture(scope="module", params=sorted(BACKBONES))
def backbone(request):
    shape, options = BACKBONES[request.param]
    return make_backbone(request.param, shape, options)


@pytest.mark.parametrize("which", ["first", "last"])
@pytest.mark.parametrize("name", sorted(FAMILIES))
def test_family_builds_trains_and_reloads(name, which, backbone):
    family, space = FAMILIES[name], get_family_space(name)
    options = family.Options()
    configs = space.enumerate(NAMES, backbone.n_stages, options)
    cfg = configs[0 if which == "first" else -1]

    assert config_from_dict(cfg.to_dict()) == cfg
    assert space.decode(space.to_params(cfg, NAMES, backbone.n_stages, options), NAMES, backbone.n_stages, options) == cfg
    assert cfg.summary().startswith(f"{name}: ")

    torch.manual_seed(0)
    model = family.build(cfg, backbone, TASKS)
    x = torch.randn(4, *backbone.input_shape)
    out = model(x)
    assert {t: tuple(o.shape) for t, o in out.items()} == {t.name: (4, t.n_outputs) for t in TASKS}
    sum(o.pow(2).mean() for o in out.values()).backward()
    grads = [p.grad for p in model.parameters() if p.grad is not None]
    assert grads and all(torch.isfinite(g).all() for g in grads)
    assert all(torch.isfinite(o).all() for o in out.values())
    assert model.shared_parameters() and model.phases()

    assert count_parameters(model) > 0
    assert count_macs(model, backbone.input_shape) == flop_counter_macs(model, backbone.input_shape) > 0

    torch.manual_seed(1)
    fresh = family.build(cfg, backbone, TASKS)
    fresh.load_state_dict(copy.deepcopy(model.state_dict()))
    model.eval()
    fresh.eval()
    with torch.no_grad():
        expected, got = model(x), fresh(x)
    assert all(torch.equal(expected[t], got[t]) for t in NAMES)
