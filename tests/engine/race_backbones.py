"""A user backbone for the confirmation-race tests (``tests.engine.race_backbones:race``): an
MLP whose first stage acts on the seed its trial trains with (read back with
``torch.initial_seed()``, which the trial seeds before building the network), at its first
training batch:

- ``barrier: DIR, parties: N, from_seed: S``: a trial of seed >= S writes ``DIR/<seed>`` and
  waits until N seeds wrote theirs (a seed left alone fails after ``barrier_timeout`` s);
  seeds below S (the search's) pass.
- ``slow_seed: S, slow_env: NAME``: with NAME set in the environment, the seed S then sleeps for
  an hour (a driver killed meanwhile leaves it unfinished).
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Sequence

import torch
from torch import nn

from share_search.arch.backbones import mlp


class RaceStage(nn.Module):
    def __init__(self, stage: nn.Module, options: dict):
        super().__init__()
        self.stage = stage
        self.seed = torch.initial_seed()
        self.options = options
        self.met = False

    def forward(self, x):
        if self.training and not self.met:
            self.met = True
            self._first_batch()
        return self.stage(x)

    def _first_batch(self) -> None:
        o = self.options
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


def race(input_shape: Sequence[int], widths: Sequence[int] = (16,), **options) -> list[nn.Module]:
    stages = mlp(input_shape, widths)
    stages[0] = RaceStage(stages[0], options)
    return stages
