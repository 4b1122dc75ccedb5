"""The built-in optimizers, registered by name (``train.optimizer``).

Each is ``factory(param_groups, config) -> torch.optim.Optimizer``: the groups carry their
own learning rates (a phase's multipliers) and, for learned loss weights, no weight decay;
weight decay is an L2 term in both.
"""

from __future__ import annotations

import torch


def adam(param_groups, config) -> torch.optim.Optimizer:
    return torch.optim.Adam(param_groups, lr=config.lr, weight_decay=config.weight_decay)


def sgd(param_groups, config) -> torch.optim.Optimizer:
    return torch.optim.SGD(param_groups, lr=config.lr, momentum=config.momentum, weight_decay=config.weight_decay)
