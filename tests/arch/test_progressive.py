
import optuna
import pytest
import torch

from share_search.arch import get_family
from share_search.arch.progressive import Lateral, ProgressiveConfig
from share_search.spec.registry import get_family_space
from share_search.arch.backbones import make_backbone

from .shared import BACKBONES, NAMES, TASKS

torch.set_num_threads(1)
optuna.logging.set_verbosity(optuna.logging.WARNING)

FAMILY = get_family("progressive")
SPACE = get_family_space("progressive")
ORDER = ("odd", "coords", "digit")


def backbone(name):
    shape, options = BACKBONES[name]
    return make_backbone(name, shape, options)


def column_state(model, k):
    parts = (model.columns[k], model.laterals[k], model.heads[k])
    return [{n: t.clone() for n, t in part.state_dict().items()} for part in parts]


@pytest.mark.parametrize("lateral", ["linear", "adapter"])
@pytest.mark.parametrize("name", ["mlp", "resnet"])
def test_training_a_later_column_cannot_change_earlier_ones(name, lateral):
    bb = backbone(name)
    torch.manual_seed(0)
    model = FAMILY.build(ProgressiveConfig(order=ORDER, lateral_stages=(1, 2), lateral=lateral), bb, TASKS)
    x, y = torch.randn(8, *bb.input_shape), torch.randn(8, 2)
    model.eval()
    with torch.no_grad():
        before_out = model(x)["odd"]
    before, trained_before = column_state(model, 0), column_state(model, 1)

    phase = model.phases()[1]
    assert phase.tasks == ("coords",)
    model.begin_phase(1)
    optimizer = torch.optim.Adam([p for group, _ in phase.param_groups for p in group], lr=0.01, weight_decay=0.1)
    for _ in range(3):
        model.train()  # a trainer calls train() every epoch; the frozen columns must stay in eval mode
        loss = (model(x)["coords"] - y).pow(2).mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()

    assert all(p.grad is None for p in model.columns[0].parameters())  # never even tracked
    for part_before, part_after in zip(before, column_state(model, 0)):
        assert part_before.keys() == part_after.keys()
        assert all(torch.equal(part_before[n], part_after[n]) for n in part_before)  # BatchNorm buffers too
    assert any(not torch.equal(b[n], a[n]) for b, a in zip(trained_before, column_state(model, 1)) for n in b)
    model.eval()
    with torch.no_grad():
        assert torch.equal(model(x)["odd"], before_out)


def test_begin_phase_keeps_other_columns_in_eval_mode():
    model = FAMILY.build(ProgressiveConfig(order=ORDER, lateral_stages=(1,)), backbone("resnet"), TASKS)
    assert all(m.training for m in model.modules())  # before any phase: everything trains
    model.begin_phase(2)
    model.eval().train()
    for k in range(3):
        parts = [model.columns[k], model.laterals[k], model.heads[k]]
        assert all(m.training == (k == 2) for part in parts for m in part.modules())
    with pytest.raises(IndexError):
        model.begin_phase(3)


def test_phases_train_columns_in_order_and_cover_every_parameter_once():
    model = FAMILY.build(ProgressiveConfig(order=ORDER, lateral_stages=(2,)), backbone("convnet"), TASKS)
    phases = model.phases()
    assert [p.tasks for p in phases] == [(t,) for t in ORDER]
    assert [p.name for p in phases] == list(ORDER)
    ids = [id(p) for phase in phases for group, mult in phase.param_groups for p in group]
    assert sorted(ids) == sorted(map(id, model.parameters()))
    assert {id(p) for p in model.laterals[1].parameters()} <= {id(p) for p in phases[1].param_groups[0][0]}


def test_outputs_are_keyed_by_task_in_task_order():
    model = FAMILY.build(ProgressiveConfig(order=ORDER, lateral_stages=(1,)), backbone("mlp"), TASKS)
    out = model(torch.randn(3, 6))
    assert list(out) == NAMES
    assert {t: tuple(o.shape) for t, o in out.items()} == {t.name: (3, t.n_outputs) for t in TASKS}


@pytest.mark.parametrize("stages", [(1,), (2,), (1, 2)])
def test_laterals_only_on_chosen_stages(stages):
    bb = backbone("mlp")  # widths 6 -> 8 -> 8 -> 4
    model = FAMILY.build(ProgressiveConfig(order=ORDER, lateral_stages=stages, lateral="linear"), bb, TASKS)
    assert [sorted(map(int, laterals)) for laterals in model.laterals] == [[], list(stages), list(stages)]
    column = sum(p.numel() for s in bb.build_stages() for p in s.parameters())
    heads = sum(4 * t.n_outputs + t.n_outputs for t in TASKS)  # Linear(4, n_outputs) each
    d = {1: (8, 8), 2: (8, 4)}
    # column k's lateral into stage i: one Linear from k earlier columns' inputs (k * d_in) to d_out
    laterals = sum(k * d[i][0] * d[i][1] + d[i][1] for i in stages for k in (1, 2))
    assert sum(p.numel() for p in model.parameters()) == 3 * column + heads + laterals


@pytest.mark.parametrize(
    "in_shape, out_shape",
    [((8,), (4,)), ((3, 8, 8), (5, 4, 4)), ((3, 4, 4), (5, 8, 8)), ((3, 4, 4), (6,)), ((3, 10), (4, 5)), ((6,), (2, 3, 3))],
)
@pytest.mark.parametrize("adapter", [False, True])
def test_lateral_maps_any_stage_input_shape_to_its_output_shape(in_shape, out_shape, adapter):
    lateral = Lateral(2, in_shape, out_shape, adapter)
    out = lateral([torch.randn(5, *in_shape), torch.randn(5, *in_shape)])
    assert out.shape == (5, *out_shape)


def test_adapter_lateral_is_scaled_projected_then_mapped():
    lateral = Lateral(2, (3, 8, 8), (5, 4, 4), adapter=True)
    scale, project, _, u = lateral.maps
    assert 0 < scale.scale.item() < 0.1
    assert (project.in_channels, project.out_channels, u.out_channels) == (6, 3, 5)  # V: 2 columns -> one's width


def test_config_is_canonical_and_summarised():
    cfg = ProgressiveConfig(order=("left", "right", "odd"), lateral_stages=(2, 1), lateral="adapter")
    assert cfg.lateral_stages == (1, 2)
    assert cfg.summary() == "progressive: left → right → odd, adapter @1,2"
    with pytest.raises(ValueError):
        ProgressiveConfig(order=("a", "a"), lateral_stages=(1,))
    with pytest.raises(ValueError):
        ProgressiveConfig(order=("a", "b"), lateral_stages=(0,))


def test_build_rejects_an_order_that_does_not_match_the_tasks():
    with pytest.raises(ValueError, match="order must list the tasks"):
        FAMILY.build(ProgressiveConfig(order=("odd", "digit"), lateral_stages=(1,)), backbone("mlp"), TASKS)
