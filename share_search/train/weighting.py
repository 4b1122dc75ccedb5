"""Loss weighting: how the per-task losses of one batch become one set of gradients.

Every method is a small ``Weighting`` with the same few hooks, so the training loop never
branches on the method. A weighting is an ``nn.Module`` because two methods learn values
(uncertainty's log-variances, GradNorm's weights): the trainer moves it to the model's
device and hands ``parameters()`` to the optimizer. The trainer makes a fresh instance
for every training phase, so a progressive column starts with fresh statistics.

All methods work on the *sum* scale: equal weighting is ``sum_t L_t`` and the DWA and
GradNorm weights sum to the number of tasks T, so every method starts from the same loss.

The built-ins below are found by name through ``registry.WEIGHTINGS``; a plugin module adds
one with ``@registry.register_weighting(name)`` on a ``Weighting`` subclass.
"""

from __future__ import annotations

import math
import random
from typing import TYPE_CHECKING, ClassVar, Mapping, Sequence

import torch
from torch import Tensor, nn

from ..spec.registry import WEIGHTINGS, create_weighting, register_weighting  # noqa: F401  (re-exported)
from .precision import LossScale

if TYPE_CHECKING:
    from ..spec.model import TrainConfig


class Weighting(nn.Module):
    """Base class; ``Equal`` is the smallest complete implementation.

    ``backward`` must leave gradients in ``.grad`` of the model parameters (and of
    ``parameters()``, if any) and return the combined loss, detached, for logging.
    ``params`` are the parameters trained in this phase; ``shared`` is the subset
    ``MultiTaskModel.shared_parameters`` names (a tree's deepest node shared by all tasks),
    where GradNorm measures gradient norms. PCGrad finds for itself every parameter that
    more than one task's loss reaches.

    Gradients go through ``self.loss_scale`` (``precision.LossScale``, set by the trainer):
    ``loss_scale.backward(total)`` for ``total.backward()``, ``loss_scale.grads(loss, params)``
    for per-task gradients in true units (unscaled under fp16 before anything compares
    them), ``loss_scale.set_grad(p, g)`` to store a combined one. Under fp32 and bf16 they
    are the plain calls; a weighting calling ``total.backward()`` itself still trains right.
    """

    name: ClassVar[str] = ""

    def __init__(self, tasks: Sequence[str], config: "TrainConfig"):
        super().__init__()
        self.tasks = tuple(tasks)
        self.loss_scale = LossScale()  # the trainer sets the fit's own (precision.py)

    def backward(self, losses: Mapping[str, Tensor], params: Sequence[nn.Parameter], shared: Sequence[nn.Parameter]) -> Tensor:
        raise NotImplementedError

    def after_step(self) -> None:
        """Called after each optimizer step (GradNorm renormalises its weights here)."""

    def end_epoch(self, epoch_losses: Mapping[str, float]) -> None:
        """Called with each task's mean training loss of the epoch that just ended (DWA)."""

    def state(self) -> dict:
        """What the method has learned, as JSON-able plain data (empty for stateless methods)."""
        return {}


def make_weighting(name: str, tasks: Sequence[str], config: "TrainConfig") -> Weighting:
    """A fresh instance of the weighting registered as ``name`` (``registry.WEIGHTINGS``)."""
    return create_weighting(name, tasks, config)


def _weighted_sum(losses: Mapping[str, Tensor], tasks: Sequence[str], weights) -> Tensor:
    return sum(w * losses[t] for t, w in zip(tasks, weights))


def _flat_grad(loss: Tensor, params: Sequence[nn.Parameter], loss_scale: LossScale) -> Tensor:
    """d loss / d params as one vector in true units, zeros for unused parameters; keeps the graph."""
    if not params:
        return loss.new_zeros(0)
    grads = loss_scale.grads(loss, params)
    return torch.cat([(torch.zeros_like(p) if g is None else g).reshape(-1) for p, g in zip(params, grads)])


class Equal(Weighting):
    """The plain sum of the task losses."""

    name = "equal"

    def backward(self, losses, params, shared):
        total = _weighted_sum(losses, self.tasks, [1.0] * len(self.tasks))
        self.loss_scale.backward(total)
        return total.detach()


class Uncertainty(Weighting):
    """Homoscedastic uncertainty weighting (Kendall, Gal & Cipolla, CVPR 2018).

    ``L = sum_t exp(-s_t) L_t + s_t`` with learned ``s_t = log sigma_t^2`` (initialised to 0).
    This is the simplified form of the authors' example code
    (github.com/yaringal/multi-task-learning-example), used for every task type. The paper's
    regression form ``1/2 exp(-s) L + 1/2 s`` is exactly half of it (same minimiser); its
    classification form weights ``s`` by 1/2 only.
    """

    name = "uncertainty"

    def __init__(self, tasks, config):
        super().__init__(tasks, config)
        self.log_vars = nn.Parameter(torch.zeros(len(self.tasks)))

    def backward(self, losses, params, shared):
        s = self.log_vars
        total = sum(torch.exp(-s[i]) * losses[t] + s[i] for i, t in enumerate(self.tasks))
        self.loss_scale.backward(total)
        return total.detach()

    def state(self):
        return {"log_vars": dict(zip(self.tasks, self.log_vars.tolist()))}


class DWA(Weighting):
    """Dynamic weight average (Liu, Johns & Davison, CVPR 2019, "MTAN", eq. 7).

    ``w_t(k) = T exp(r_t(k-1)/tau) / sum_i exp(r_i(k-1)/tau)`` with
    ``r_t(k-1) = L_t(k-1) / L_t(k-2)`` on mean epoch losses: a task whose loss falls more
    slowly gets more weight. The weights are 1 for the first two epochs.
    """

    name = "dwa"

    def __init__(self, tasks, config):
        super().__init__(tasks, config)
        self.temperature = config.dwa_temperature
        self.weights = [1.0] * len(self.tasks)
        self._previous: Mapping[str, float] | None = None

    def backward(self, losses, params, shared):
        total = _weighted_sum(losses, self.tasks, self.weights)
        self.loss_scale.backward(total)
        return total.detach()

    def end_epoch(self, epoch_losses):
        previous, self._previous = self._previous, dict(epoch_losses)
        if previous is None:
            return
        # A task with no labelled row in an epoch has no rate; treat it as unchanged.
        rates = torch.tensor([epoch_losses[t] / previous[t] if previous[t] > 0 else 1.0 for t in self.tasks])
        self.weights = (len(self.tasks) * torch.softmax(rates / self.temperature, dim=0)).tolist()

    def state(self):
        return {"weights": dict(zip(self.tasks, self.weights))}


class GradNorm(Weighting):
    """GradNorm (Chen, Badrinarayanan, Lee & Rabinovich, ICML 2018, Algorithm 1).

    Learned weights ``w_t`` scale the task losses. Their gradient comes only from
    ``L_grad = sum_t |G_t - G_avg r_t^alpha|`` where ``G_t = ||d(w_t L_t)/dW||`` on the
    shared parameters W, ``r_t`` is the task's loss ratio ``L_t / L_t(0)`` over its mean,
    and the target is held constant. After each step the weights are renormalised to sum
    to T. ``L_t(0)`` is a task's first non-zero batch loss of the phase.
    """

    name = "gradnorm"

    def __init__(self, tasks, config):
        super().__init__(tasks, config)
        self.alpha = config.gradnorm_alpha
        self.weights = nn.Parameter(torch.ones(len(self.tasks)))
        self.register_buffer("initial_losses", torch.full((len(self.tasks),), math.nan))

    def backward(self, losses, params, shared):
        task_losses = torch.stack([losses[t] for t in self.tasks])
        # ||d(w_t L_t)/dW|| = w_t ||dL_t/dW||, so only the plain norms need autograd.
        norms = torch.stack([_flat_grad(losses[t], shared, self.loss_scale).norm() for t in self.tasks])
        total = (self.weights.detach() * task_losses).sum()
        self.loss_scale.backward(total)
        with torch.no_grad():
            current = task_losses.detach()
            unset = torch.isnan(self.initial_losses) & (current > 0)
            self.initial_losses.copy_(torch.where(unset, current, self.initial_losses))
            ratios = torch.nan_to_num(current / self.initial_losses, nan=1.0)
            target = (self.weights * norms).mean() * (ratios / ratios.mean()) ** self.alpha
        grad_loss = (self.weights * norms - target).abs().sum()
        self.loss_scale.set_grad(self.weights, torch.autograd.grad(grad_loss, self.weights)[0])
        return total.detach()

    def after_step(self):
        with torch.no_grad():
            # A weight scales its loss; one pushed below zero would make that task ascend.
            self.weights.clamp_(min=1e-6)
            self.weights.mul_(len(self.tasks) / self.weights.sum())

    def state(self):
        return {"weights": dict(zip(self.tasks, self.weights.tolist()))}


class PCGrad(Weighting):
    """Projecting conflicting gradients (Yu et al., NeurIPS 2020, "Gradient surgery", Alg. 1).

    On the parameters that more than one task's loss reaches (on a tree: every node shared
    by several tasks, fully or partly; a cross-stitch column feeding a unit), each task's
    gradient ``g_i`` over all of them, as one vector, visits the other tasks in a random
    order (seeded from ``TrainConfig.seed``) and drops its component along any original
    ``g_j`` it conflicts with (``g_i . g_j < 0``): ``g_i <- g_i - (g_i . g_j) / ||g_j||^2 g_j``.
    The projected gradients are summed. A parameter only one task reaches (a head, a
    task's own branch) gets that task's plain gradient: there is nothing to conflict with.
    Which loss reaches a parameter is read from the autograd graph of the batch.
    """

    name = "pcgrad"

    def __init__(self, tasks, config):
        super().__init__(tasks, config)
        self.rng = random.Random(config.seed)

    def backward(self, losses, params, shared):
        per_task = [self.loss_scale.grads(losses[t], params) for t in self.tasks]
        reached = [[g[k] is not None for g in per_task] for k in range(len(params))]
        several = [k for k, by in enumerate(reached) if sum(by) > 1]
        if several:
            original = torch.stack(
                [torch.cat([(torch.zeros_like(params[k]) if g[k] is None else g[k]).reshape(-1) for k in several]) for g in per_task]
            )
            combined = self.project(original).split([params[k].numel() for k in several])
            for k, g in zip(several, combined):
                self.loss_scale.set_grad(params[k], g.view_as(params[k]))
        for k, by in enumerate(reached):
            if sum(by) == 1:
                self.loss_scale.set_grad(params[k], per_task[by.index(True)][k])
        return sum(losses[t] for t in self.tasks).detach()

    def project(self, original: Tensor) -> Tensor:
        """Algorithm 1 on the tasks' gradients (one row each, in true units): their projected sum."""
        projected = original.clone()
        for i in range(len(self.tasks)):
            others = [j for j in range(len(self.tasks)) if j != i]
            self.rng.shuffle(others)
            for j in others:
                dot = projected[i] @ original[j]
                if dot < 0:
                    projected[i] -= dot / (original[j] @ original[j]) * original[j]
        return projected.sum(dim=0)
