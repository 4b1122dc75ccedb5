"""Each loss weighting against numbers worked out by hand on tiny problems."""

import json
import math

import pytest
import torch
from torch import nn

from share_search.train.loop import TrainConfig
from share_search.train.weighting import WEIGHTINGS, Weighting, make_weighting, register_weighting

TASKS = ("a", "b")


def linear_losses(theta, coefficients):
    """Task t's loss is coefficients[t] . theta, so its gradient is coefficients[t] exactly."""
    return {t: (torch.tensor(c) * theta).sum() for t, c in coefficients.items()}


def test_equal_sums_the_losses():
    theta = nn.Parameter(torch.ones(1))
    w = make_weighting("equal", TASKS, TrainConfig())
    total = w.backward(linear_losses(theta, {"a": [2.0], "b": [3.0]}), [theta], [theta])
    assert total.item() == 5.0  # 2 + 3
    assert theta.grad.tolist() == [5.0]  # d(2 theta + 3 theta)/d theta


def test_uncertainty_at_given_log_variances():
    theta = nn.Parameter(torch.ones(1))
    w = make_weighting("uncertainty", TASKS, TrainConfig())
    with torch.no_grad():
        w.log_vars.copy_(torch.tensor([0.0, math.log(2.0)]))
    total = w.backward(linear_losses(theta, {"a": [2.0], "b": [3.0]}), [theta], [theta])
    # L = e^0 * 2 + 0 + e^-ln2 * 3 + ln2 = 2 + 1.5 + 0.693147
    assert total.item() == pytest.approx(4.193147, abs=1e-6)
    # dL/dtheta = 1 * 2 + 0.5 * 3
    assert theta.grad.item() == pytest.approx(3.5)
    # dL/ds_t = 1 - e^-s_t L_t: 1 - 2 = -1 and 1 - 0.5 * 3 = -0.5
    assert w.log_vars.grad.tolist() == pytest.approx([-1.0, -0.5])
    assert w.state() == {"log_vars": {"a": 0.0, "b": pytest.approx(math.log(2.0))}}


def test_dwa_weights_from_two_epochs():
    w = make_weighting("dwa", TASKS, TrainConfig(dwa_temperature=2.0))
    w.end_epoch({"a": 1.0, "b": 2.0})
    assert w.weights == [1.0, 1.0]  # still 1 during the second epoch
    w.end_epoch({"a": 0.5, "b": 2.0})
    # r = (0.5 / 1, 2 / 2) = (0.5, 1); w_a = 2 e^(0.5/2) / (e^(0.5/2) + e^(1/2)) = 2 / (1 + e^0.25)
    # = 2 / 2.2840254 = 0.8756470, and w_b = 2 - w_a = 1.1243530
    assert w.weights == pytest.approx([0.8756470, 1.1243530], abs=1e-6)
    theta = nn.Parameter(torch.ones(1))
    total = w.backward(linear_losses(theta, {"a": [1.0], "b": [1.0]}), [theta], [theta])
    assert total.item() == pytest.approx(2.0)  # weights sum to T = 2
    w.end_epoch({"a": 0.5, "b": 1.0})  # only the last two epochs count: r = (1, 0.5)
    assert w.weights == pytest.approx([1.1243530, 0.8756470], abs=1e-6)


def test_gradnorm_one_update_on_a_one_parameter_toy():
    theta = nn.Parameter(torch.ones(1))  # the single shared parameter
    w = make_weighting("gradnorm", TASKS, TrainConfig(gradnorm_alpha=1.5))
    sgd = torch.optim.SGD([theta, *w.parameters()], lr=0.1)
    # L_a = 3 theta, L_b = theta at theta = 1: losses (3, 1), dL/dtheta = (3, 1).
    w.backward(linear_losses(theta, {"a": [3.0], "b": [1.0]}), [theta], [theta])
    assert theta.grad.item() == pytest.approx(4.0)  # w = (1, 1): 1 * 3 + 1 * 1
    # First step: L(0) = L, so r = (1, 1). G = (1*3, 1*1), G_avg = 2, targets (2, 2).
    # L_grad = |w_a 3 - 2| + |w_b 1 - 2|, so dL_grad/dw = (+3, -1).
    assert w.weights.grad.tolist() == pytest.approx([3.0, -1.0])
    sgd.step()
    w.after_step()
    # w = (1 - 0.1*3, 1 + 0.1*1) = (0.7, 1.1), renormalised to sum 2: (0.7, 1.1) * 2/1.8 = (7/9, 11/9)
    assert w.weights.tolist() == pytest.approx([7 / 9, 11 / 9])

    sgd.zero_grad()
    with torch.no_grad():
        theta.fill_(1.0)
    # Now task a has fallen to half its first loss, task b has not moved: L = (1.5, 1).
    w.backward(linear_losses(theta, {"a": [1.5], "b": [1.0]}), [theta], [theta])
    # L/L(0) = (0.5, 1), mean 0.75, r = (2/3, 4/3). G = (7/9 * 1.5, 11/9 * 1) = (1.1667, 1.2222),
    # G_avg = 1.1944, targets = 1.1944 * r^1.5 = (0.6502, 1.8390): G_a above, G_b below,
    # so dL_grad/dw = (+1.5, -1): the slower task b gains weight.
    assert w.weights.grad.tolist() == pytest.approx([1.5, -1.0])


def test_pcgrad_projects_conflicting_gradients():
    theta = nn.Parameter(torch.zeros(2))  # shared
    head = nn.Parameter(torch.zeros(1))  # used by task a only
    losses = linear_losses(theta, {"a": [1.0, 0.0], "b": [-1.0, 1.0]})
    losses["a"] = losses["a"] + 2.0 * head.sum()
    w = make_weighting("pcgrad", TASKS, TrainConfig())
    total = w.backward(losses, [theta, head], [theta])
    # g_a = (1, 0), g_b = (-1, 1), g_a . g_b = -1 < 0: they conflict.
    # g_a' = g_a - (-1)/|g_b|^2 g_b = (1, 0) + 0.5 (-1, 1) = (0.5, 0.5)
    # g_b' = g_b - (-1)/|g_a|^2 g_a = (-1, 1) + (1, 0) = (0, 1)
    # sum = (0.5, 1.5)
    assert theta.grad.tolist() == pytest.approx([0.5, 1.5])
    assert head.grad.tolist() == [2.0]  # task-specific: left alone
    assert total.item() == 0.0  # the plain sum of the losses at theta = 0, head = 0


def test_pcgrad_leaves_agreeing_gradients_alone():
    theta = nn.Parameter(torch.zeros(2))
    w = make_weighting("pcgrad", TASKS, TrainConfig())
    w.backward(linear_losses(theta, {"a": [1.0, 0.0], "b": [1.0, 1.0]}), [theta], [theta])
    assert theta.grad.tolist() == [2.0, 1.0]  # g_a . g_b = 1 >= 0: plain sum


@pytest.mark.parametrize("name", sorted(WEIGHTINGS))
def test_every_weighting_gives_finite_gradients_and_json_state(name):
    torch.manual_seed(0)
    trunk, head_a, head_b = nn.Linear(3, 4), nn.Linear(4, 1), nn.Linear(4, 1)
    params = [*trunk.parameters(), *head_a.parameters(), *head_b.parameters()]
    w = make_weighting(name, TASKS, TrainConfig())
    h = trunk(torch.randn(8, 3))
    losses = {"a": head_a(h).pow(2).mean(), "b": (head_b(h) - 1).pow(2).mean()}
    total = w.backward(losses, params, list(trunk.parameters()))
    assert torch.isfinite(total)
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in params)
    w.after_step()
    w.end_epoch({"a": 1.0, "b": 1.0})
    json.dumps(w.state())


def test_registry_rejects_unknown_and_duplicate_names():
    with pytest.raises(ValueError, match="unknown weighting 'nope' \\(known: equal"):
        make_weighting("nope", TASKS, TrainConfig())

    class Again(Weighting):
        name = "equal"

    with pytest.raises(ValueError, match="already registered"):
        register_weighting(Again)
