"""User backbones (``tests.fault_backbones:faulty``) that plant faults inside trials.

A trial cannot be told apart from inside a stage except by what flows through it, so the
fault is keyed on the training batch size, a searched value (``train.batch_size`` as a
choice list): ``faults: {24: raise, 40: nan}`` breaks exactly the trials that train with
those batch sizes, while evaluation and the other trials run normally.
"""

from __future__ import annotations

import os
import signal
import time
from typing import Mapping, Sequence

import torch
from torch import nn

from share_search.arch.backbones import mlp

FAULTS = ("raise", "nan", "oom", "die")


class Faulty(nn.Module):
    """Wraps a stage; in training mode, a batch of a listed size triggers its fault."""

    def __init__(self, stage: nn.Module, faults: Mapping[int, str], delay: float):
        super().__init__()
        self.stage = stage
        self.faults = dict(faults)
        self.delay = delay

    def forward(self, x):
        if self.training:
            if self.delay:
                time.sleep(self.delay)
            fault = self.faults.get(x.shape[0])
            if fault == "raise":
                raise RuntimeError(f"planted fault for batch size {x.shape[0]}")
            if fault == "oom":
                raise torch.OutOfMemoryError(f"planted: CUDA out of memory for batch size {x.shape[0]}")
            if fault == "die":  # as the kernel's OOM killer would end a worker
                os.kill(os.getpid(), signal.SIGKILL)
            if fault == "nan":
                return self.stage(x) * float("nan")
        return self.stage(x)


def faulty(input_shape: Sequence[int], widths: Sequence[int] = (16,), faults: Mapping | None = None, delay: float = 0.0) -> list[nn.Module]:
    """An MLP whose first stage plants ``faults`` ({batch size: raise|nan|oom|die}); ``delay``
    seconds of sleep per training batch make trials last long enough to be interrupted."""
    faults = {int(k): v for k, v in (faults or {}).items()}
    unknown = sorted(set(faults.values()) - set(FAULTS))
    if unknown:
        raise TypeError(f"unknown fault(s) {unknown} (known: {', '.join(FAULTS)})")
    stages = mlp(input_shape, widths)
    stages[0] = Faulty(stages[0], faults, delay)
    return stages
