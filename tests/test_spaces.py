"""The search space: sampling and decoding share one path; references and grids are exact."""

import optuna
import pytest

from share_search.arch import FAMILIES
from share_search.arch.tree import TreeConfig
from share_search.train.problem import load_problem
from share_search.space.spaces import (
    ROLE_HARD_SHARING,
    ROLE_SINGLE_TASK,
    arch_params,
    decode,
    grid_points,
    grid_problems,
    reference_archs,
    sample_trial,
    space_sizes,
)
from share_search.engine.search import enqueue_reference
from share_search.spec.model import parse_spec


def make_problem(**changes):
    raw = {
        "name": "s",
        "data": {"source": "digits", "max_samples": 300},
        "tasks": {"digit": None, "odd": None, "loop": None},
        "backbone": {"name": "mlp", "options": {"widths": [16, 16, 8]}},
        "families": {"tree": {}, "cross_stitch": {}, "progressive": {}},
        "train": {"lr": {"low": 1e-4, "high": 1e-2, "log": True}, "weighting": ["equal", "dwa"]},
    }
    raw.update(changes)
    return load_problem(parse_spec(raw))


@pytest.fixture(scope="module")
def problem():
    return make_problem()


def test_sampled_trial_decodes_back_from_its_params(problem):
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=1))
    for _ in range(30):
        trial = study.ask()
        plan = sample_trial(trial, problem)
        assert decode(trial.params, problem) == plan
        study.tell(trial, 0.0)
    families = {t.params["family"] for t in study.trials}
    assert families == set(FAMILIES)  # 30 random draws reach every family


def test_training_values_come_from_the_spec(problem):
    trial = optuna.trial.FixedTrial({"family": "tree", "train.lr": 0.005, "train.weighting": "dwa", **_hard(problem)})
    plan = sample_trial(trial, problem)
    assert plan.train.lr == 0.005 and plan.train.weighting == "dwa"
    assert plan.train.epochs == problem.spec.train.epochs.value
    assert plan.train.seed == problem.spec.seed


def _hard(problem):
    return arch_params(TreeConfig.hard_sharing(problem.task_names, problem.backbone.n_stages), problem)


def test_references_are_single_task_then_hard_sharing(problem):
    (r1, a1), (r2, a2) = reference_archs(problem)
    assert (r1, r2) == (ROLE_SINGLE_TASK, ROLE_HARD_SHARING)
    assert all(len(g) == 1 for part in a1.stages for g in part)
    assert all(len(part) == 1 for part in a2.stages)


def test_reference_outside_the_space_carries_its_recipe(problem):
    study = optuna.create_study()
    for role, arch in reference_archs(problem):
        enqueue_reference(study, problem, role, arch)
    single, hard = study.get_trials(states=(optuna.trial.TrialState.WAITING,))
    # first_stage_shared (default) leaves the independent networks outside the tree space
    single_params, hard_params = (t.system_attrs["fixed_params"] for t in (single, hard))
    assert single_params == {} and "fixed_arch" in single.user_attrs
    assert hard_params["family"] == "tree" and "fixed_arch" not in hard.user_attrs
    assert hard_params["train.lr"] == pytest.approx(1e-3)  # references train with default values
    plan = decode(single_params, problem, single.user_attrs)
    assert plan.arch == TreeConfig.independent(problem.task_names, problem.backbone.n_stages)
    assert plan.role == ROLE_SINGLE_TASK


def test_grid_lists_every_architecture_and_choice_once():
    problem = make_problem(families={"tree": {}}, train={"weighting": ["equal", "dwa"]})
    points = grid_points(problem)
    n_trees = space_sizes(problem)["tree"]
    assert n_trees == 12  # 3 tasks, 3 stages, first stage shared
    assert len(points) == 2 * n_trees
    assert len({tuple(sorted(p.items())) for p in points}) == len(points)
    archs = {decode(p, problem).arch for p in points}
    assert len(archs) == n_trees


def test_grid_refuses_ranges(problem):
    assert grid_problems(problem.spec) == ["train.lr: the grid sampler needs a fixed value or a choice list, got a log-range [0.0001, 0.01]"]
