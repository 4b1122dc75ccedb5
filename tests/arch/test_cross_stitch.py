import json

import optuna
import pytest
import torch

from share_search.arch import get_family
from share_search.arch.cross_stitch import CrossStitchConfig, cross_stitch
from share_search.spec.registry import get_family_space
from share_search.arch.backbones import make_backbone

from .shared import BACKBONES, NAMES, TASKS

torch.set_num_threads(1)
optuna.logging.set_verbosity(optuna.logging.WARNING)

FAMILY = get_family("cross_stitch")
SPACE = get_family_space("cross_stitch")


def backbone(name):
    shape, options = BACKBONES[name]
    return make_backbone(name, shape, options)


def reference_forward(model, x, mix=True):
    """The textbook loop: run each column's stage, then mix with x̃ᵢ = Σⱼ αᵢⱼ ⊙ xⱼ."""
    columns = [model.column(k) for k in range(len(NAMES))]
    hs = [x] * len(columns)
    for i in range(len(columns[0])):
        hs = [column[i](h) for column, h in zip(columns, hs)]
        if mix and str(i) in model.alphas:
            alpha = model.alphas[str(i)]
            view = (-1,) + (1,) * (hs[0].dim() - 2)
            hs = [sum(alpha[a, b].view(view) * hs[b] for b in range(len(hs))) for a in range(len(hs))]
    return {t: head(h) for t, head, h in zip(NAMES, model.heads, hs)}


@pytest.mark.parametrize("name", sorted(BACKBONES))
def test_forward_matches_the_paper_formula_written_out(name):
    bb = backbone(name)
    torch.manual_seed(0)
    model = FAMILY.build(CrossStitchConfig(stages=tuple(range(bb.n_stages))), bb, TASKS)
    with torch.no_grad():  # random α, so a transposed or misindexed mix cannot pass
        for alpha in model.alphas.values():
            alpha.uniform_(-1, 1)
    x = torch.randn(5, *bb.input_shape)
    got = model(x)
    expected = reference_forward(model, x)
    for t in NAMES:
        torch.testing.assert_close(got[t], expected[t], rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("shape", [(7,), (4, 3, 3)], ids=["vectors", "feature maps"])
def test_both_ways_of_mixing_give_the_formula(shape):
    torch.manual_seed(0)
    h = torch.randn(3, 5, *shape)
    alpha = torch.randn(3, 3, shape[0])
    view = (1, -1) + (1,) * (len(shape) - 1)
    expected = torch.stack([sum(alpha[i, j].view(view) * h[j] for j in range(3)) for i in range(3)])
    torch.testing.assert_close(cross_stitch(alpha, h), expected)


@pytest.mark.parametrize("name", sorted(BACKBONES))
def test_identity_alpha_gives_independent_columns(name):
    bb = backbone(name)
    torch.manual_seed(0)
    model = FAMILY.build(CrossStitchConfig(stages=(0, 1), alpha_self=1.0), bb, TASKS).eval()
    x = torch.randn(3, *bb.input_shape)
    with torch.no_grad():
        got, expected = model(x), reference_forward(model, x, mix=False)
    for t in NAMES:
        torch.testing.assert_close(got[t], expected[t], rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("name", sorted(BACKBONES))
def test_columns_start_from_the_weights_of_copies_built_one_after_another(name):
    bb = backbone(name)
    torch.manual_seed(0)
    model = FAMILY.build(CrossStitchConfig(stages=(0,)), bb, TASKS)
    torch.manual_seed(0)
    copies = [bb.build_stages() for _ in TASKS]  # what a loop over columns would have built
    for k, stages in enumerate(copies):
        got = [p for stage in model.column(k) for p in stage.parameters()]
        expected = [p for stage in stages for p in stage.parameters()]
        assert len(got) == len(expected) > 0
        for a, b in zip(got, expected):
            torch.testing.assert_close(a, b, rtol=0, atol=0)


@pytest.mark.parametrize("name", ["mlp", "convnet"])
def test_gradients_reach_every_column_and_alpha(name):
    bb = backbone(name)
    model = FAMILY.build(CrossStitchConfig(stages=(1,)), bb, TASKS)
    out = model(torch.randn(4, *bb.input_shape))
    out["odd"].sum().backward()  # one task's loss reaches the other columns through the unit
    stage0 = model.stages[0]
    if name == "mlp":  # one stacked weight, row k for column k
        grads = [stage0.layers[1].weight.grad[k] for k in range(len(NAMES))]
    else:
        grads = [copy[1].weight.grad for copy in stage0.copies]
    assert all(g.abs().sum() > 0 for g in grads)
    assert model.alphas["1"].grad.abs().sum() > 0
    assert model.alphas["1"].grad[NAMES.index("digit")].abs().sum() == 0  # digit's mix is unused


def test_alpha_starts_at_alpha_self_with_rows_summing_to_one():
    bb = backbone("convnet")
    model = FAMILY.build(CrossStitchConfig(stages=(0, 2), alpha_self=0.8), bb, TASKS)
    alpha = model.alphas["0"].detach()
    assert alpha.shape == (3, 3, bb.stage_shapes[0][0])
    assert model.alphas["2"].shape == (3, 3, bb.stage_shapes[2][0])
    torch.testing.assert_close(alpha.sum(dim=1), torch.ones(3, alpha.shape[-1]))
    torch.testing.assert_close(alpha[0, 0], torch.full((alpha.shape[-1],), 0.8))
    torch.testing.assert_close(alpha[0, 1], torch.full((alpha.shape[-1],), 0.1))


def test_one_phase_puts_alpha_at_its_learning_rate_multiplier():
    bb = backbone("mlp")
    model = FAMILY.build(CrossStitchConfig(stages=(0, 1), alpha_lr_mult=30), bb, TASKS)
    (phase,) = model.phases()
    (rest, one), (alphas, mult) = phase.param_groups
    assert phase.tasks == tuple(NAMES) and one == 1.0 and mult == 30.0
    assert {id(p) for p in alphas} == {id(p) for p in model.alphas.values()}
    assert sorted(map(id, rest + alphas)) == sorted(map(id, model.parameters()))


def test_architecture_details_are_json_alphas_per_unit():
    bb = backbone("mlp")
    model = FAMILY.build(CrossStitchConfig(stages=(1,), alpha_self=0.9), bb, TASKS)
    details = json.loads(json.dumps(model.architecture_details()))
    assert details["tasks"] == NAMES
    assert list(details["alpha"]) == ["after_stage1"]
    assert details["alpha"]["after_stage1"][2][2] == pytest.approx([0.9] * bb.stage_shapes[1][0])


def test_config_is_canonical_and_summarised():
    cfg = CrossStitchConfig(stages=(2, 0, 2), alpha_self=0.899999, alpha_lr_mult=10.00004)
    assert cfg == CrossStitchConfig(stages=(0, 2), alpha_self=0.9, alpha_lr_mult=10)
    assert cfg.summary() == "cross_stitch: after 0,2 (α0=0.9, lr×10)"
    with pytest.raises(ValueError):
        CrossStitchConfig(stages=())


def test_build_rejects_units_after_missing_stages():
    with pytest.raises(ValueError, match="has 3 stages"):
        FAMILY.build(CrossStitchConfig(stages=(3,)), backbone("mlp"), TASKS)
