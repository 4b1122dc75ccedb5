"""Learning-rate schedules (``train.lr_schedule``, ``train.warmup_epochs``), stepped per optimizer step.

Per step, not per epoch: poly and cosine decay smoothly within epochs as dense-prediction
recipes do (DeepLab's poly, power 0.9, is per iteration), and a fractional warm-up means
something. The schedule runs over one training phase, ``epochs × steps per epoch`` steps,
and restarts with the next phase (a progressive network's next column starts its own
warm-up and decay, as it starts with a fresh optimizer).

The factor multiplies every parameter group's own learning rate, so each group keeps its
multiplier (encoder × ``encoder_lr_mult``, cross-stitch α × ``alpha_lr_mult``, learned loss
weights at ``lr``). With ``s`` the steps taken so far in the phase (0 for the first step),
``W`` the warm-up steps and ``T`` the phase's steps:

- warm-up (``s < W``): ``(s + 1) / W``, rising linearly to 1;
- then, with progress ``p = (s − W) / (T − W)`` in [0, 1):
  ``constant`` 1; ``cosine`` ``(1 + cos(π p)) / 2``; ``poly`` ``(1 − p) ** power``;
  ``step`` ``gamma ** floor(s / (lr_step_epochs × steps per epoch))`` (epochs counted from
  the phase's start, warm-up included, as with ``torch.optim.lr_scheduler.StepLR``).

No step gets a learning rate of 0: the last one is at ``p = (T − 1 − W) / (T − W)``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from ..spec.model import DEFAULT_LR_GAMMA, DEFAULT_LR_POWER, TrainConfig


@dataclass(frozen=True)
class Schedule:
    """One phase's learning-rate factor per step."""

    name: str
    total_steps: int
    warmup_steps: int
    steps_per_epoch: int
    step_epochs: int | None = None
    gamma: float = DEFAULT_LR_GAMMA
    power: float = DEFAULT_LR_POWER

    def factor(self, step: int) -> float:
        """The multiplier of every group's learning rate for the optimizer step after ``step`` steps."""
        if step < self.warmup_steps:
            return (step + 1) / self.warmup_steps
        if self.name == "step":
            return self.gamma ** (step // (self.step_epochs * self.steps_per_epoch))
        progress = min(max((step - self.warmup_steps) / max(self.total_steps - self.warmup_steps, 1), 0.0), 1.0)
        if self.name == "cosine":
            return 0.5 * (1.0 + math.cos(math.pi * progress))
        if self.name == "poly":
            return (1.0 - progress) ** self.power
        return 1.0


def phase_schedule(config: TrainConfig, steps_per_epoch: int) -> Schedule:
    """The schedule of one phase of ``config.epochs`` epochs of ``steps_per_epoch`` steps."""
    return Schedule(
        name=config.lr_schedule,
        total_steps=config.epochs * steps_per_epoch,
        warmup_steps=round(config.warmup_epochs * steps_per_epoch),
        steps_per_epoch=steps_per_epoch,
        step_epochs=config.lr_step_epochs,
        gamma=DEFAULT_LR_GAMMA if config.lr_gamma is None else config.lr_gamma,
        power=DEFAULT_LR_POWER if config.lr_power is None else config.lr_power,
    )


def make_scheduler(optimizer: torch.optim.Optimizer, config: TrainConfig, steps_per_epoch: int) -> torch.optim.lr_scheduler.LRScheduler | None:
    """A ``LambdaLR`` to step after every optimizer step; None for a constant rate without warm-up
    (nothing to do, and the fp32 defaults train exactly as before)."""
    if config.lr_schedule == "constant" and config.warmup_epochs == 0:
        return None
    return torch.optim.lr_scheduler.LambdaLR(optimizer, phase_schedule(config, steps_per_epoch).factor)
