"""A user backbone (``tests.engine.seed_backbones:by_seed``) that acts on the seed its trial
trains with, for the ``search.repeats`` and confirmation-race tests.

A trial seeds torch with its plan's seed before it builds the network, so a stage reads its
seed back with ``torch.initial_seed()`` when it is built, and acts on its first training
batch (the driver builds stages to learn their shapes, but never trains them):

- ``fail_seed: S``: the seed S raises.
- ``barrier: DIR, parties: N``: write ``DIR/<seed>`` and wait until N seeds wrote theirs; a
  seed left alone (its seeds trained one after another) fails after ``barrier_timeout`` s.
  With ``from_seed: S`` only seeds >= S take part (the race's new seeds), the others pass.
- ``slow_seed: S, slow_env: NAME``: with NAME set in the environment, the seed S then sleeps
  for an hour (a driver killed meanwhile leaves it unfinished; without NAME it is fast).
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Sequence

import torch
from torch import nn

from share_search.arch.backbones import mlp


class BySeed(nn.Module):
    def __init__(self, stage: nn.Module, options: dict):
        super().__init__()
        self.stage = stage
        self.seed = torch.initial_seed()
        self.options = options
        self.met = False

    def forward(self, x):
        if self.training and not self.met:
            self._first_batch()
            self.met = True
        return self.stage(x)

    def _first_batch(self) -> None:
        o = self.options
        if self.seed == o.get("fail_seed"):
            raise RuntimeError(f"planted fault for seed {self.seed}")
        if o.get("barrier") and self.seed >= int(o.get("from_seed", 0)):
            folder = Path(o["barrier"])
            folder.mkdir(parents=True, exist_ok=True)
            (folder / str(self.seed)).write_text("started")
            deadline = time.monotonic() + float(o.get("barrier_timeout", 120))
            while len(list(folder.iterdir())) < int(o["parties"]):
                if time.monotonic() > deadline:
                    raise RuntimeError(f"seed {self.seed} waited alone: the other seeds did not train at the same time")
                time.sleep(0.05)
        if o.get("slow_env") and os.environ.get(o["slow_env"]) and self.seed == o.get("slow_seed"):
            time.sleep(3600)


def by_seed(input_shape: Sequence[int], widths: Sequence[int] = (16,), **options) -> list[nn.Module]:
    stages = mlp(input_shape, widths)
    stages[0] = BySeed(stages[0], options)
    return stages
