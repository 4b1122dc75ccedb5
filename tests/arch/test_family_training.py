"""Every family, built from real backbone stages, learns the digits tasks in a few epochs."""

import numpy as np
import pytest

from share_search.arch import FAMILIES, build_model
from share_search.spec.registry import get_family_space
from share_search.arch.tree import TreeConfig
from share_search.train.problem import load_problem
from share_search.spec.model import parse_spec
from share_search.train.loop import TrainConfig, fit


@pytest.fixture(scope="module")
def problem():
    spec = parse_spec(
        {
            "name": "fam",
            "data": {"source": "digits"},
            "tasks": {"digit": None, "odd": None, "loop": None},
            "backbone": {"name": "mlp", "options": {"widths": [64, 64, 32]}},
            "families": list(FAMILIES),
        }
    )
    return load_problem(spec)


def chance(problem, task):
    """Accuracy of always answering the training split's most frequent class."""
    y_train = problem.data.train.y[task.label]
    y_val = problem.data.val.y[task.label]
    values, counts = np.unique(y_train, return_counts=True)
    return float((y_val == values[counts.argmax()]).mean())


def test_hard_sharing_reaches_90_percent_on_digit(problem):
    model = build_model(TreeConfig.hard_sharing(problem.task_names, problem.backbone.n_stages), problem.backbone, problem.tasks)
    result = fit(model, problem.data, problem.tasks, TrainConfig(epochs=6, lr=0.003, batch_size=32))
    assert result.val["digit"]["accuracy"] >= 0.9


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_short_training_beats_chance_on_every_task(problem, family):
    fam = FAMILIES[family]
    arch = get_family_space(family).enumerate(problem.task_names, problem.backbone.n_stages, fam.Options())[-1]
    model = build_model(arch, problem.backbone, problem.tasks)
    result = fit(model, problem.data, problem.tasks, TrainConfig(epochs=3, lr=0.003, batch_size=32))
    for task in problem.tasks:
        assert result.val[task.name]["accuracy"] > chance(problem, task) + 0.05, (arch.summary(), task.name)
