"""Mixed precision for one fit (``train.precision``): autocast, and loss scaling for fp16.

- ``fp32``: nothing changes; no autocast, no scaler (results are those of before).
- ``bf16``: the forward pass and the losses run under ``torch.autocast`` with bfloat16, on
  the CPU or a GPU. bfloat16 has float32's range, so gradients need no scaling.
- ``fp16``: autocast with float16 and a ``torch.amp.GradScaler``, on CUDA only (PyTorch's
  float16 kernels on the CPU are slow and partial, so a CPU device is refused by name).

Parameters stay float32 in every mode (autocast casts per operation); model outputs are
cast to float32 before the losses, so losses and metrics are computed in float32.

Loss scaling and the weightings: under fp16 the gradients in ``.grad`` are *scaled* (times
the scaler's factor) until the trainer calls ``LossScale.unscale_``; ``unscale_`` divides
them, records whether any is infinite (that step is then skipped and the factor lowered)
and only then may they be clipped. A weighting that compares or projects per-task
gradients (GradNorm's norms, PCGrad's dot products) must see them in true units, so it asks
``LossScale.grads`` for them (unscaled at once) and writes what it combined back with
``LossScale.set_grad`` (scaled again, so every ``.grad`` is on one scale for ``unscale_``).
The scale is a power of two, so scaling back and forth is exact.
"""

from __future__ import annotations

import contextlib
from typing import ContextManager, Sequence

import torch
from torch import Tensor, nn

from ..errors import SpecError

DTYPES = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}


def check_precision(precision: str, device: torch.device) -> None:
    """fp16 trains on CUDA only; raised by name before training (and by ``runs.preflight`` before a local run)."""
    if precision == "fp16" and device.type != "cuda":
        raise SpecError(
            "train.precision",
            f"fp16 needs a CUDA device (float16 autocast with a GradScaler), but this trial trains on {device.type}; "
            "use bf16 or fp32 there",
        )


class LossScale:
    """How a weighting turns losses into gradients: plain, or through an fp16 ``GradScaler``.

    Without a scaler (fp32, bf16) every method is the plain PyTorch call. ``used`` records
    whether the last backward went through this object (see ``Precision.step``).
    """

    def __init__(self, scaler: torch.amp.GradScaler | None = None):
        self.scaler = scaler
        self.used = False

    def backward(self, loss: Tensor) -> None:
        """``loss.backward()``, scaled: ``.grad`` then holds scaled gradients."""
        self.used = True
        (loss if self.scaler is None else self.scaler.scale(loss)).backward()

    def grads(self, loss: Tensor, params: Sequence[nn.Parameter]) -> tuple[Tensor | None, ...]:
        """d loss / d params in true units (None where the loss does not reach a parameter); keeps the graph.

        Under fp16 the loss is scaled before autograd (so small float16 gradients do not
        flush to zero) and the result divided back here, before the caller compares them.
        """
        self.used = True
        if self.scaler is None:
            return torch.autograd.grad(loss, params, retain_graph=True, allow_unused=True)
        grads = torch.autograd.grad(self.scaler.scale(loss), params, retain_graph=True, allow_unused=True)
        inverse = 1.0 / self.scaler.get_scale()
        return tuple(None if g is None else g * inverse for g in grads)

    def set_grad(self, param: nn.Parameter, grad: Tensor) -> None:
        """Store a gradient given in true units as ``param.grad``, on the scale of the other gradients."""
        self.used = True
        param.grad = grad.clone() if self.scaler is None else grad * self.scaler.get_scale()

    def unscale_(self, optimizer: torch.optim.Optimizer) -> None:
        """Bring every gradient of ``optimizer`` back to true units (before clipping)."""
        if self.scaler is not None:
            self.scaler.unscale_(optimizer)


class Precision:
    """One fit's precision: the autocast context, its ``LossScale``, and the optimizer step."""

    def __init__(self, name: str, device: torch.device):
        check_precision(name, device)
        self.name = name
        self.device_type = device.type
        self.dtype = DTYPES[name]
        self.loss_scale = LossScale(torch.amp.GradScaler(device.type) if name == "fp16" else None)

    def autocast(self) -> ContextManager:
        """The forward pass and the losses run inside this; a no-op for fp32."""
        if self.dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device_type, dtype=self.dtype)

    def step(self, optimizer: torch.optim.Optimizer, params: Sequence[nn.Parameter], grad_clip: float | None) -> None:
        """Unscale, clip ``params`` to ``grad_clip`` (their joint L2 norm), step, update the scale.

        A weighting that called ``loss.backward()`` itself (a plugin that does not know
        ``LossScale``) left unscaled gradients: under fp16 they are put on the scale first,
        exactly (a power of two), so they come out unchanged.
        """
        scaler = self.loss_scale.scaler
        if scaler is not None and not self.loss_scale.used:
            grads = [p.grad for group in optimizer.param_groups for p in group["params"] if p.grad is not None]
            if grads:
                factor = scaler.scale(torch.ones((), device=grads[0].device))  # also starts a scaler that has not scaled yet
                torch._foreach_mul_(grads, factor)
        self.loss_scale.unscale_(optimizer)
        if grad_clip is not None:
            torch.nn.utils.clip_grad_norm_(params, grad_clip)
        if scaler is None:
            optimizer.step()
        else:
            scaler.step(optimizer)  # skipped when unscale_ found an infinite or NaN gradient
            scaler.update()
        self.loss_scale.used = False
