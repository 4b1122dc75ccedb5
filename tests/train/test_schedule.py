"""``train.lr_schedule`` and ``train.warmup_epochs``: the learning rates match the formulas, per step.

The formulas are written out here (README, ``train`` row; ``share_search/train/schedule.py``):
with ``s`` the optimizer steps taken in the phase, ``W`` warm-up steps, ``T`` the phase's steps
and ``p = (s − W) / (T − W)``: warm-up ``(s + 1) / W``; cosine ``(1 + cos πp) / 2``; poly
``(1 − p) ** power``; step ``gamma ** floor(s / (lr_step_epochs × steps per epoch))``. Each
group's rate is its own base rate (lr × its multiplier) times that factor, and a progressive
network's second column starts its schedule again.
"""

from __future__ import annotations

import dataclasses
import math

import pytest
import torch
from torch.optim.optimizer import register_optimizer_step_pre_hook

from share_search.arch.cross_stitch import CrossStitchConfig
from share_search.arch.progressive import ProgressiveConfig
from share_search.errors import SpecError
from share_search.spec.model import parse_spec
from share_search.train.loop import TrainConfig, fit, model_phases
from share_search.train.schedule import make_scheduler
from tests.runs import small_spec
from tests.train._problems import TASKS, digit_images, mlp_network

LR = 0.1
PER_EPOCH, EPOCHS, WARMUP = 4, 5, 1.5  # T = 20 steps, W = 6 steps
T, W = PER_EPOCH * EPOCHS, 6


def by_formula(name: str, s: int, gamma: float = 0.1, power: float = 0.9, step_epochs: int = 2) -> float:
    if s < W:
        return (s + 1) / W
    p = (s - W) / (T - W)
    return {
        "constant": 1.0,
        "cosine": (1 + math.cos(math.pi * p)) / 2,
        "poly": (1 - p) ** power,
        "step": gamma ** (s // (step_epochs * PER_EPOCH)),
    }[name]


def rates(config: TrainConfig, multipliers=(1.0, 10.0)) -> list[list[float]]:
    """Each step's learning rate of every group, from a real optimizer stepped T times."""
    groups = [{"params": [torch.nn.Parameter(torch.zeros(1))], "lr": LR * m} for m in multipliers]
    optimizer = torch.optim.SGD(groups, lr=LR)
    scheduler = make_scheduler(optimizer, config, PER_EPOCH)
    seen = []
    for _ in range(T):
        seen.append([g["lr"] for g in optimizer.param_groups])
        optimizer.step()
        scheduler.step()
    return seen


@pytest.mark.parametrize(
    "name, extra",
    [("constant", {}), ("cosine", {}), ("poly", {}), ("poly", {"lr_power": 2.0}), ("step", {"lr_step_epochs": 2}), ("step", {"lr_step_epochs": 2, "lr_gamma": 0.5})],
)
def test_rates_follow_the_formulas_per_step_and_keep_each_groups_multiplier(name, extra):
    config = TrainConfig(lr=LR, epochs=EPOCHS, lr_schedule=name, warmup_epochs=WARMUP, **extra)
    kwargs = {"gamma": extra.get("lr_gamma", 0.1), "power": extra.get("lr_power", 0.9), "step_epochs": extra.get("lr_step_epochs", 2)}
    for s, (plain, faster) in enumerate(rates(config)):
        factor = by_formula(name, s, **kwargs)
        assert plain == pytest.approx(LR * factor, rel=1e-12), f"{name} step {s}"
        assert faster == pytest.approx(10 * LR * factor, rel=1e-12), f"{name} step {s}"
        assert factor > 0  # no step trains at a rate of 0


def test_without_warm_up_the_first_step_has_the_full_rate_and_decay_starts_at_once():
    config = TrainConfig(lr=LR, epochs=EPOCHS, lr_schedule="cosine")
    seen = [r[0] for r in rates(config, (1.0,))]
    assert seen[0] == pytest.approx(LR)
    assert seen[1] == pytest.approx(LR * (1 + math.cos(math.pi / T)) / 2)
    assert all(a > b for a, b in zip(seen, seen[1:]))  # per step: it falls within every epoch


def test_the_default_constant_rate_makes_no_scheduler():
    optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=LR)
    assert make_scheduler(optimizer, TrainConfig(), PER_EPOCH) is None
    assert make_scheduler(optimizer, TrainConfig(epochs=2, warmup_epochs=1), PER_EPOCH) is not None


# --------------------------------------------------------------------------- inside fit
class StepRates:
    """Every optimizer step's group rates during a fit, by optimizer (one per phase), through PyTorch's global step hook."""

    def __enter__(self):
        self.by_optimizer: dict[int, list[list[float]]] = {}
        self.handle = register_optimizer_step_pre_hook(lambda opt, args, kwargs: self.by_optimizer.setdefault(id(opt), []).append([g["lr"] for g in opt.param_groups]))
        return self

    def __exit__(self, *exc):
        self.handle.remove()


def data_and_steps():
    data = digit_images(flat=True, rows=400)
    return data, math.ceil(len(data.train) / 64)


def test_fit_schedules_each_group_at_its_multiplier_cross_stitch_and_encoder():
    data, per_epoch = data_and_steps()
    config = TrainConfig(lr=0.01, epochs=2, batch_size=64, device="cpu", lr_schedule="cosine", warmup_epochs=0.5, encoder_lr_mult=0.5)
    model = mlp_network(config=CrossStitchConfig(stages=(0,), alpha_lr_mult=10.0))
    multipliers = sorted({m for phase in model_phases(model, config) for _, m in phase.param_groups})
    assert multipliers == [0.5, 1.0, 10.0]  # the encoder, the heads, α
    with StepRates() as record:
        fit(model, data, TASKS, config)
    (steps,) = record.by_optimizer.values()
    total, warm = 2 * per_epoch, round(0.5 * per_epoch)
    assert len(steps) == total
    for s, group_rates in enumerate(steps):
        factor = (s + 1) / warm if s < warm else (1 + math.cos(math.pi * (s - warm) / (total - warm))) / 2
        assert sorted(set(round(r / (0.01 * factor), 9) for r in group_rates)) == multipliers, f"step {s}"


def test_a_progressive_network_restarts_its_schedule_per_column():
    data, per_epoch = data_and_steps()
    config = TrainConfig(lr=0.01, epochs=2, batch_size=64, device="cpu", lr_schedule="poly", warmup_epochs=1)
    model = mlp_network(config=ProgressiveConfig(order=("digit", "odd"), lateral_stages=(1,), lateral="linear"))
    with StepRates() as record:
        fit(model, data, TASKS, config)
    columns = list(record.by_optimizer.values())
    assert len(columns) == 2
    total = 2 * per_epoch
    for steps in columns:
        assert len(steps) == total
        expected = [(s + 1) / per_epoch if s < per_epoch else (1 - (s - per_epoch) / (total - per_epoch)) ** 0.9 for s in range(total)]
        assert [g[0] for g in steps] == pytest.approx([0.01 * f for f in expected], rel=1e-9)


def test_fit_with_a_schedule_still_learns():
    data, _ = data_and_steps()
    config = TrainConfig(lr=0.03, epochs=4, batch_size=32, device="cpu", lr_schedule="step", lr_step_epochs=2, lr_gamma=0.5, warmup_epochs=0.5)
    result = fit(mlp_network(), data, TASKS, config)
    assert result.val["digit"]["accuracy"] > 0.5


# --------------------------------------------------------------------------- spec
@pytest.mark.parametrize(
    "train, key, message",
    [
        ({"lr_schedule": "linear"}, "train.lr_schedule", "input should be 'constant', 'cosine', 'step' or 'poly', got 'linear'"),
        ({"lr_schedule": "step"}, "train.lr_step_epochs", "lr_schedule: step needs the epochs between decays"),
        ({"lr_schedule": "cosine", "lr_gamma": 0.5}, "train.lr_gamma", "applies to lr_schedule: step only, but lr_schedule is cosine"),
        ({"lr_power": 2}, "train.lr_power", "applies to lr_schedule: poly only, but lr_schedule is constant"),
        ({"lr_schedule": "step", "lr_step_epochs": 0}, "train.lr_step_epochs", "input should be greater than 0"),
        ({"lr_schedule": "step", "lr_step_epochs": 1, "lr_gamma": 1.5}, "train.lr_gamma", "input should be less than or equal to 1"),
        ({"warmup_epochs": -1}, "train.warmup_epochs", "input should be greater than or equal to 0"),
        ({"epochs": [2, 4], "warmup_epochs": 2}, "train.warmup_epochs", "must be < train.epochs (2 at the fewest), got 2"),
    ],
)
def test_schedule_keys_are_checked_by_name(train, key, message):
    with pytest.raises(SpecError) as caught:
        parse_spec(small_spec(train=train))
    assert caught.value.path == key and message in caught.value.message, str(caught.value)


def test_a_schedule_spec_reaches_the_trials_config():
    from share_search.space.spaces import train_config

    spec = parse_spec(small_spec(train={"lr_schedule": "poly", "lr_power": 2, "warmup_epochs": 0.5, "epochs": 3}))
    config = train_config(spec, {k: p.default() for k, p in spec.train.params().items()})
    assert (config.lr_schedule, config.lr_power, config.warmup_epochs) == ("poly", 2.0, 0.5)
    with pytest.raises(ValueError, match="train.warmup_epochs must be >= 0 and < train.epochs"):
        dataclasses.replace(config, warmup_epochs=3)
