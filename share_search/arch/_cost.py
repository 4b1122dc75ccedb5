"""What a network costs: parameters held and multiply-accumulates per sample.

Both are counted on the built module, not derived from a family's config, so every family
(and any user backbone) is measured the same way.

MACs come from torch's own FLOP formulas (``torch.utils.flop_counter``), added up by a small
dispatch mode of ours rather than by ``FlopCounterMode``: every ``TorchDispatchMode``
subclass wraps its dispatch in ``torch._disable_dynamo`` unless it opts out, and that
wrapper imports ``torch._dynamo`` on first use, 1.5-2.3 s per process here. The driver
counts MACs when it exports the top trials and trains nothing, so it does not pay that
import; trial workers do, through ``torch.optim``.
"""

from __future__ import annotations

from typing import Sequence

import torch
from torch import nn
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils.flop_counter import flop_registry


def count_parameters(model: nn.Module) -> int:
    """Every parameter, trainable or frozen (frozen progressive columns still cost memory and time)."""
    return sum(p.numel() for p in model.parameters())


def count_macs(model: nn.Module, input_shape: Sequence[int]) -> int:
    """Multiply-accumulates of one forward pass on one sample (``input_shape`` excludes the batch).

    Counted with torch's FLOP formulas on a batch of one in eval mode (MACs = FLOPs / 2),
    the same total as ``torch.utils.flop_counter.FlopCounterMode``. It counts matrix
    products and convolutions, the usual convention; element-wise work (activations,
    normalisation, pooling, biases) is left out.
    """
    param = next(model.parameters(), None)
    x = torch.zeros(1, *input_shape, device=param.device if param is not None else "cpu")
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad(), _FlopTotal() as counter:
            model(x)
    finally:
        model.train(was_training)
    return counter.flops // 2


class _FlopTotal(TorchDispatchMode):
    """Adds up ``flop_registry``'s FLOPs over the ops it sees, as ``FlopCounterMode`` does,
    without its per-module breakdown and without importing ``torch._dynamo``."""

    @classmethod
    def _should_skip_dynamo(cls) -> bool:
        return False  # nothing here is compiled, so no torch._dynamo wrapper is needed

    def __init__(self) -> None:
        super().__init__()
        self.flops = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        formula = flop_registry.get(func._overloadpacket)
        if formula is None:  # a composite op (attention, say) may hide counted ops: count those
            with self:
                decomposed = func.decompose(*args, **kwargs)
            if decomposed is not NotImplemented:
                return decomposed
        out = func(*args, **kwargs)
        if formula is not None:
            self.flops += formula(*args, **kwargs, out_val=out)
        return out
