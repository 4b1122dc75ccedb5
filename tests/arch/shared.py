"""Tasks and tiny backbones the family tests share: one of each task type, every built-in backbone."""

from share_search.tasks import Task

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
