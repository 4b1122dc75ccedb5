"""PCGrad projects every parameter more than one task's loss reaches, and nothing else.

Checked against a direct computation of Algorithm 1 of Yu et al. 2020 ("Gradient Surgery for
Multi-Task Learning"): each task's gradient over the shared parameters, as one vector, drops
its component along every other task's original gradient it conflicts with (the others
visited in a random order), and the projected gradients are summed. Before issue 20 only
the deepest node shared by all tasks was projected.
"""

from __future__ import annotations

import random

import torch

from share_search.arch import build_model
from share_search.arch.backbones import make_backbone
from share_search.arch.tree import TreeConfig
from share_search.train.loop import TrainConfig
from share_search.train.tasks import Task
from share_search.train.weighting import PCGrad

SEED = 5


def regression(*names: str) -> list[Task]:
    return [Task(n, n, "regression", 1, "mae") for n in names]


def network(config: TreeConfig, tasks: list[Task]):
    torch.manual_seed(0)
    model = build_model(config, make_backbone("mlp", (6,), {"widths": (8, 8)}), tasks)
    with torch.no_grad():  # the same head everywhere: opposite targets then pull the trunk apart
        for head in model.heads.values():
            head.load_state_dict(model.heads[tasks[0].name].state_dict())
    return model


def losses_for(model, tasks: list[Task], targets: dict[str, float]) -> dict[str, torch.Tensor]:
    x = torch.randn(16, 6, generator=torch.Generator().manual_seed(1))
    outputs = model(x)
    return {t.name: t.loss(outputs[t.name], torch.full((16, 1), targets[t.name])) for t in tasks}


def by_hand(gradients: list[torch.Tensor], order_seed: int) -> torch.Tensor:
    """Algorithm 1: g_i <- g_i - (g_i . g_j)/||g_j||^2 g_j for every original g_j it conflicts with; sum."""
    rng = random.Random(order_seed)
    projected = []
    for i, g in enumerate(gradients):
        g = g.clone()
        others = [j for j in range(len(gradients)) if j != i]
        rng.shuffle(others)
        for j in others:
            if g @ gradients[j] < 0:
                g = g - (g @ gradients[j]) / (gradients[j] @ gradients[j]) * gradients[j]
        projected.append(g)
    return torch.stack(projected).sum(0)


def expected_gradients(model, losses, shared_prefixes: tuple[str, ...]) -> tuple[dict[str, torch.Tensor], list[torch.Tensor]]:
    """Every parameter's expected ``.grad``: projected on the parameters named by ``shared_prefixes``,
    the plain gradient of the one loss that reaches each other parameter."""
    named = dict(model.named_parameters())
    shared = [n for n in named if n.startswith(shared_prefixes)]
    flat = [
        torch.cat([(torch.zeros_like(named[n]) if g is None else g).reshape(-1) for n, g in zip(shared, grads)])
        for grads in (torch.autograd.grad(loss, [named[n] for n in shared], retain_graph=True, allow_unused=True) for loss in losses.values())
    ]
    expected = dict(zip(shared, by_hand(flat, SEED).split([named[n].numel() for n in shared])))
    for name, p in named.items():
        if name not in expected:
            reached = [torch.autograd.grad(loss, p, retain_graph=True, allow_unused=True)[0] for loss in losses.values()]
            reached = [g for g in reached if g is not None]
            assert len(reached) == 1, f"{name} should be reached by exactly one task's loss"
            expected[name] = reached[0]
    return {n: g.view_as(named[n]) for n, g in expected.items()}, flat


def check_against_hand(model, tasks, targets, shared_prefixes):
    losses = losses_for(model, tasks, targets)
    expected, flat = expected_gradients(model, losses, shared_prefixes)
    assert any(flat[i] @ flat[j] < 0 for i in range(len(flat)) for j in range(i)), "the task gradients should conflict"
    params = list(model.parameters())
    PCGrad([t.name for t in tasks], TrainConfig(weighting="pcgrad", seed=SEED)).backward(losses, params, model.shared_parameters())
    for name, p in model.named_parameters():
        torch.testing.assert_close(p.grad, expected[name], rtol=1e-5, atol=1e-7, msg=lambda m: f"{name}: {m}")


def test_pcgrad_projects_both_stages_of_a_two_stage_hard_sharing_network():
    tasks = regression("up", "down")
    model = network(TreeConfig.hard_sharing(["up", "down"], 2), tasks)
    check_against_hand(model, tasks, {"up": 5.0, "down": -5.0}, ("stages.0.", "stages.1."))


def test_pcgrad_projects_partly_shared_nodes_and_never_the_heads():
    """[a b c] > [a b][c]: stage 0 (all three) and node a+b (two) are projected together;
    node c and every head get their one task's gradient."""
    tasks = regression("a", "b", "c")
    model = network(TreeConfig(stages=((("a", "b", "c"),), (("a", "b"), ("c",)))), tasks)
    check_against_hand(model, tasks, {"a": 5.0, "b": -5.0, "c": 2.0}, ("stages.0.", "stages.1.a+b."))
