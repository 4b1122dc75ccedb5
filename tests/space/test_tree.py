"""The tree family's search space: sampling, its inverse, enumeration and size (``space.tree``)."""
import optuna
import pytest
import torch

from share_search.arch import config_from_dict
from share_search.arch.tree import TreeConfig, TreeOptions
from share_search.space.tree import count_trees, enumerate_trees
from share_search.spec.registry import get_family_space

torch.set_num_threads(1)
optuna.logging.set_verbosity(optuna.logging.WARNING)

SPACE = get_family_space("tree")
SHARED = TreeOptions()
UNSHARED = TreeOptions(first_stage_shared=False)
NAMES3 = ["left", "right", "sum"]
NAMES4 = ["a", "b", "c", "d"]

COUNTS = {2: [1, 2, 3, 4, 5, 6], 3: [1, 5, 12, 22, 35, 51], 4: [1, 15, 60, 154, 315]}


@pytest.mark.parametrize("n_tasks", sorted(COUNTS))
def test_enumeration_counts_with_first_stage_shared(n_tasks):
    names = NAMES4[:n_tasks]
    for n_stages, expected in enumerate(COUNTS[n_tasks], start=1):
        trees = enumerate_trees(names, n_stages)
        assert len(trees) == len(set(trees)) == expected
        assert count_trees(n_tasks, n_stages) == SPACE.space_size(names, n_stages, SHARED) == expected


def test_enumeration_without_first_stage_shared_adds_a_stage_of_choice():
    # Splitting at stage 0 is one more branch point: n stages unshared == n+1 stages shared.
    for n_tasks in (2, 3, 4):
        for n_stages in (1, 2, 3):
            trees = enumerate_trees(NAMES4[:n_tasks], n_stages, first_stage_shared=False)
            assert len(trees) == count_trees(n_tasks, n_stages, False) == count_trees(n_tasks, n_stages + 1)
    trees = enumerate_trees(NAMES3, 3, first_stage_shared=False)
    assert TreeConfig.independent(NAMES3, 3) in trees
    assert TreeConfig.independent(NAMES3, 3) not in enumerate_trees(NAMES3, 3)


def test_enumeration_is_canonical_and_ordered():
    trees = enumerate_trees(NAMES3, 4)
    assert trees[0] == TreeConfig.hard_sharing(NAMES3, 4)
    assert trees[-1].summary() == "tree: [left right sum] > [left][right][sum]x3"
    assert all(TreeConfig(stages=[p[::-1] for p in t.stages]) == t for t in trees)
    assert enumerate_trees(["sum", "right", "left"], 4) == trees


def test_json_round_trip():
    for cfg in enumerate_trees(NAMES3, 3):
        data = cfg.to_dict()
        assert data["family"] == "tree"
        assert config_from_dict(data) == cfg
    cfg = enumerate_trees(NAMES4, 4)[77]
    assert TreeConfig.model_validate_json(cfg.model_dump_json()) == cfg


def test_param_names_and_choices_read_well():
    cfg = TreeConfig(stages=[[NAMES3]] * 2 + [[["left", "right"], ["sum"]]] * 2)
    assert SPACE.to_params(cfg, NAMES3, 4, SHARED) == {
        "tree.stage1.split[left,right,sum]": "[left right sum]",
        "tree.stage2.split[left,right,sum]": "[left right][sum]",
        "tree.stage3.split[left,right]": "[left right]",
    }
    trial = optuna.trial.FixedTrial(SPACE.to_params(cfg, NAMES3, 4, SHARED))
    SPACE.sample(trial, NAMES3, 4, SHARED)
    assert trial.distributions["tree.stage3.split[left,right]"].choices == ("[left right]", "[left][right]")
    assert trial.distributions["tree.stage1.split[left,right,sum]"].choices == (
        "[left right sum]", "[left][right sum]", "[left right][sum]", "[left sum][right]", "[left][right][sum]",
    )


@pytest.mark.parametrize("names, n_stages, options", [(NAMES3, 5, SHARED), (NAMES4, 4, SHARED), (NAMES3, 3, UNSHARED)])
def test_decode_inverts_to_params_on_every_tree(names, n_stages, options):
    for cfg in SPACE.enumerate(names, n_stages, options):
        params = SPACE.to_params(cfg, names, n_stages, options)
        assert SPACE.decode({**params, "lr": 0.1}, names, n_stages, options) == cfg


def test_to_params_rejects_configs_outside_the_space():
    with pytest.raises(ValueError, match="first_stage_shared=True keeps stage 0 whole"):
        SPACE.to_params(TreeConfig.independent(NAMES3, 3), NAMES3, 3, SHARED)
    with pytest.raises(ValueError, match="must hold the space's tasks and stages"):
        SPACE.to_params(TreeConfig.hard_sharing(NAMES3, 3), NAMES3, 4, SHARED)
    with pytest.raises(ValueError, match="must hold the space's tasks and stages"):
        SPACE.to_params(TreeConfig.hard_sharing(NAMES3, 3), NAMES4[:3], 3, SHARED)


def test_random_sampling_reaches_every_tree_with_stable_distributions():
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    seen, distributions = set(), {}
    for _ in range(300):
        trial = study.ask()
        seen.add(SPACE.sample(trial, NAMES3, 3, SHARED))
        study.tell(trial, 0.0)
        for name, dist in trial.distributions.items():
            assert distributions.setdefault(name, dist) == dist
    assert seen == set(enumerate_trees(NAMES3, 3))
