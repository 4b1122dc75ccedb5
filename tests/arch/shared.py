"""Tasks and tiny backbones the family tests share: one of each task type, every built-in
backbone; and torch's own FLOP counter, the reference for ``count_macs``."""

import torch
from torch.utils.flop_counter import FlopCounterMode

from share_search.train.tasks import Task

TASKS = [
    Task("digit", "digit", "multiclass", 4, "accuracy"),
    Task("odd", "odd", "binary", 1, "accuracy"),
    Task("coords", "coords", "regression", 2, "mae"),
]
NAMES = [t.name for t in TASKS]
BACKBONES = {  # name -> (input shape, options)
    "mlp": ((6,), {"widths": (8, 8, 4)}),
    "convnet": ((1, 8, 8), {"channels": (3, 4), "hidden": 8}),
    "resnet": ((2, 8, 8), {"channels": (3, 4)}),
}


def flop_counter_macs(model, input_shape) -> int:
    """MACs of one eval-mode forward on one sample by ``FlopCounterMode``; the model's mode is kept."""
    was_training = model.training
    with torch.no_grad(), FlopCounterMode(display=False) as reference:
        model.eval()(torch.zeros(1, *input_shape))
    model.train(was_training)
    return reference.get_total_flops() // 2
