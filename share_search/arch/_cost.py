"""What a network costs: parameters held and multiply-accumulates per sample.

Both are counted on the built module, not derived from a family's config, so every family
(and any user backbone) is measured the same way.
"""

from __future__ import annotations

from typing import Sequence

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode


def count_parameters(model: nn.Module) -> int:
    """Every parameter, trainable or frozen (frozen progressive columns still cost memory and time)."""
    return sum(p.numel() for p in model.parameters())


def count_macs(model: nn.Module, input_shape: Sequence[int]) -> int:
    """Multiply-accumulates of one forward pass on one sample (``input_shape`` excludes the batch).

    Measured with ``torch.utils.flop_counter.FlopCounterMode`` on a batch of one in eval
    mode (MACs = FLOPs / 2). It counts matrix products and convolutions, the usual
    convention; element-wise work (activations, normalisation, pooling, biases) is left out.
    """
    param = next(model.parameters(), None)
    x = torch.zeros(1, *input_shape, device=param.device if param is not None else "cpu")
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad(), FlopCounterMode(display=False) as counter:
            model(x)
    finally:
        model.train(was_training)
    return counter.get_total_flops() // 2
