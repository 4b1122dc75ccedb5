import optuna
import pytest
import torch

from share_search.arch import FAMILIES
from share_search.arch.tree import TreeConfig, TreeOptions
from share_search.space.tree import enumerate_trees
from share_search.spec.registry import get_family_space
from share_search.arch.backbones import make_backbone
from share_search.train.tasks import Task

torch.set_num_threads(1)
optuna.logging.set_verbosity(optuna.logging.WARNING)

FAMILY = FAMILIES["tree"]
SPACE = get_family_space("tree")
SHARED = TreeOptions()
UNSHARED = TreeOptions(first_stage_shared=False)
NAMES3 = ["left", "right", "sum"]
NAMES4 = ["a", "b", "c", "d"]


def _tasks(names):
    return [Task(n, n, "multiclass", 3, "accuracy") for n in names]


# --- the config --------------------------------------------------------------------------


def test_configs_that_build_the_same_network_are_equal():
    a = TreeConfig(stages=[[["sum", "right", "left"]], [["sum"], ["right", "left"]]])
    b = TreeConfig(stages=(((["left", "right", "sum"]),), (("left", "right"), ("sum",))))
    assert a == b and hash(a) == hash(b)
    assert a.stages == ((("left", "right", "sum"),), (("left", "right"), ("sum",)))
    assert a.tasks == ("left", "right", "sum") and a.n_stages == 2
    assert TreeConfig(stages=[[["b", "sum"], ["left"]]]).tasks == ("b", "left", "sum")


@pytest.mark.parametrize(
    "stages, message",
    [
        ([], "at least one stage"),
        ([[["a", "b"]], [["a"]]], r"stage 1: .*\['b'\] missing"),
        ([[["a", "b"]], [["a"], ["b", "c"]]], r"stage 1: .*\['c'\] not in stage 0"),
        ([[["a", "b"]], [["a"], ["a", "b"]]], r"stage 1: every task must appear once, but \['a'\]"),
        ([[["a", "b"], ["c"]], [["a", "c"], ["b"]]], r"stage 1: tasks that split never rejoin, but group \[a c\]"),
        ([[["a"], ["b"]], [["a"], ["b"]], [["a", "b"]]], r"stage 2: tasks that split never rejoin"),
        ([[["a"], []]], r"stage 0: groups must be non-empty"),
        ([[["a b"]]], r"stage 0: task names are identifiers"),
    ],
)
def test_invalid_trees_raise_value_errors_naming_the_stage(stages, message):
    with pytest.raises(ValueError, match=message):
        TreeConfig(stages=stages)


def test_summary_compresses_repeated_stages():
    assert TreeConfig.hard_sharing(NAMES3, 1).summary() == "tree: [left right sum]"
    assert TreeConfig.independent(["left", "right"], 2).summary() == "tree: [left][right]x2"
    cfg = TreeConfig(stages=[[["left_odd", "left_even"]]] * 2 + [[["left_odd"], ["left_even"]]] * 2)
    assert cfg.summary() == "tree: [left_even left_odd]x2 > [left_even][left_odd]x2"
    cfg = TreeConfig(stages=[[NAMES3], [["left", "right"], ["sum"]], [["left"], ["right"], ["sum"]]])
    assert cfg.summary() == "tree: [left right sum] > [left right][sum] > [left][right][sum]"


def test_baselines_are_buildable_whatever_the_options():
    backbone = make_backbone("mlp", (4,), {"widths": (8, 8)})
    for cfg in (TreeConfig.independent(NAMES3, 2), TreeConfig.hard_sharing(NAMES3, 2)):
        model = FAMILY.build(cfg, backbone, _tasks(NAMES3))
        assert set(model(torch.randn(2, 4))) == set(NAMES3)


# --- Optuna ------------------------------------------------------------------------------


# --- the network -------------------------------------------------------------------------


@pytest.fixture(scope="module")
def mlp():
    return make_backbone("mlp", (6,), {"widths": (8, 7, 5, 4)})


@pytest.mark.parametrize("first_stage_shared", [True, False])
def test_every_node_runs_once_per_batch(mlp, first_stage_shared):
    for cfg in enumerate_trees(NAMES4, 4, first_stage_shared)[::7]:
        model = FAMILY.build(cfg, mlp, _tasks(NAMES4))
        calls = {}
        for i, stage in enumerate(model.stages):
            for key, node in stage.items():
                node.register_forward_hook(lambda *_, k=(i, key): calls.__setitem__(k, calls.get(k, 0) + 1))
        out = model(torch.randn(3, 6))
        assert calls == {(i, "+".join(g)): 1 for i, p in enumerate(cfg.stages) for g in p}
        assert {t: o.shape for t, o in out.items()} == {t: (3, 3) for t in NAMES4}


def test_parameters_are_one_stage_copy_per_node_plus_heads(mlp):
    per_stage = [sum(p.numel() for p in s.parameters()) for s in mlp.build_stages()]
    head = 4 * 3 + 3
    for cfg in enumerate_trees(NAMES4, 4)[::5]:
        model = FAMILY.build(cfg, mlp, _tasks(NAMES4))
        expected = sum(len(p) * n for p, n in zip(cfg.stages, per_stage)) + 4 * head
        assert sum(p.numel() for p in model.parameters()) == expected


def test_state_dict_names_are_readable(mlp):
    cfg = TreeConfig(stages=[[NAMES3]] * 2 + [[["left", "right"], ["sum"]]] * 2)
    keys = FAMILY.build(cfg, mlp, _tasks(NAMES3)).state_dict().keys()
    assert "stages.0.left+right+sum.1.weight" in keys
    assert "stages.3.left+right.0.weight" in keys
    assert "heads.sum.1.bias" in keys


def test_shared_parameters_are_the_deepest_node_all_tasks_share(mlp):
    tasks = _tasks(NAMES3)
    cfg = TreeConfig(stages=[[NAMES3]] * 2 + [[["left", "right"], ["sum"]]] * 2)
    model = FAMILY.build(cfg, mlp, tasks)
    assert model.shared_parameters() == list(model.stages[1]["left+right+sum"].parameters())
    model = FAMILY.build(TreeConfig(stages=[[["left", "right"], ["sum"]]] * 4), mlp, tasks)
    assert model.shared_parameters() == list(model.parameters())
    model = FAMILY.build(TreeConfig.independent(NAMES3, 4), mlp, tasks)
    assert model.shared_parameters() == list(model.parameters())


def test_output_order_follows_the_tasks_given(mlp):
    model = FAMILY.build(TreeConfig.hard_sharing(NAMES3, 4), mlp, _tasks(["sum", "left", "right"]))
    assert list(model(torch.randn(2, 6))) == ["sum", "left", "right"]


def test_build_rejects_a_tree_that_does_not_fit(mlp):
    with pytest.raises(ValueError, match="'mlp' has 4 stages"):
        FAMILY.build(TreeConfig.hard_sharing(NAMES3, 3), mlp, _tasks(NAMES3))
    with pytest.raises(ValueError, match="the tasks are"):
        FAMILY.build(TreeConfig.hard_sharing(NAMES3, 4), mlp, _tasks(NAMES4[:3]))
