"""Registries of one shape (families, backbones, weightings, metrics, samplers), the spec
checked against them without torch, and a user's plugin (a weighting and a family) through
spec, search, report and export.

share-search's modules are imported inside the tests, so each test fails on its own where
an API is missing.
"""

from __future__ import annotations

import html
import json
import subprocess
import sys
from pathlib import Path

import pytest

from .runs import REPO, cli_command, cli_env, small_spec

BUILT_IN = {
    "family": ["cross_stitch", "progressive", "tree"],
    "backbone": ["convnet", "mlp", "resnet", "resnet18", "resnet34", "resnet50", "timm"],
    "weighting": ["dwa", "equal", "gradnorm", "pcgrad", "uncertainty"],
    "family space": ["cross_stitch", "progressive", "tree"],
    "optimizer": ["adam", "sgd"],
    "metric": ["abs_err", "accuracy", "auc", "balanced_accuracy", "f1", "f_score", "iou", "mae", "mean_angle", "median_angle", "miou", "pixel_accuracy", "r2", "rel_err", "rmse", "within_11_25", "within_22_5", "within_30"],
    "sampler": ["grid", "nsga2", "random", "tpe"],
}
CASES = [(kind, name) for kind, names in BUILT_IN.items() for name in names]
PLUGIN = "tests.registry_plugin"


def _kind(kind: str):
    """(register_x, list_x, create: name -> object, check: object -> bool) of one registry."""
    import optuna
    import torch

    import share_search as ss
    from share_search.arch import Family
    from share_search.train.loop import TrainConfig
    from share_search.train.weighting import Weighting

    return {
        "family": (ss.register_family, ss.list_families, ss.get_family, lambda f: isinstance(f, Family)),
        "family space": (ss.register_family_space, ss.list_family_spaces, ss.get_family_space, lambda s: isinstance(s, ss.FamilySpace)),
        "optimizer": (ss.register_optimizer, ss.list_optimizers, lambda n: ss.create_optimizer(n, [torch.nn.Parameter(torch.zeros(2))], TrainConfig()), lambda o: isinstance(o, torch.optim.Optimizer)),
        "backbone": (ss.register_backbone, ss.list_backbones, lambda n: ss.create_backbone(n, (1, 8, 8), **({"model": "test_resnet"} if n == "timm" else {})), lambda b: b.n_stages >= 1),
        "weighting": (ss.register_weighting, ss.list_weightings, lambda n: ss.create_weighting(n, ["a", "b"], TrainConfig()), lambda w: isinstance(w, Weighting)),
        "metric": (None, ss.list_metrics, ss.get_metric, lambda m: isinstance(m.higher_is_better, bool)),
        "sampler": (ss.register_sampler, ss.list_samplers, lambda n: ss.create_sampler(n, seed=0, trials=4), lambda s: isinstance(s, optuna.samplers.BaseSampler)),
    }[kind]


@pytest.mark.parametrize("kind", sorted(BUILT_IN))
def test_list_is_sorted_and_complete(kind):
    _, list_x, _, _ = _kind(kind)
    assert list_x() == BUILT_IN[kind]


@pytest.mark.parametrize("kind,name", CASES)
def test_every_entry_is_created_by_name(kind, name):
    _, _, create, check = _kind(kind)
    assert check(create(name))


@pytest.mark.parametrize("kind,name", CASES)
def test_a_taken_name_is_refused(kind, name):
    import share_search as ss
    from share_search.spec.registry import REGISTRIES

    register = _kind(kind)[0] or (lambda n: ss.register_metric(n, higher_is_better=True, task_types=["binary"]))
    with pytest.raises(ValueError, match=f"{kind} '{name}' is already registered"):
        register(name)(type("Again", (), {}) if kind in ("family", "family space", "weighting") else (lambda *a, **k: None))
    assert name in REGISTRIES[kind]


@pytest.mark.parametrize("kind", sorted(BUILT_IN))
def test_an_unknown_name_lists_the_known_ones(kind):
    _, _, create, _ = _kind(kind)
    with pytest.raises(KeyError, match=rf"unknown {kind} 'nope' \(known: "):
        create("nope")


def test_user_metric_and_sampler_register_and_are_accepted_by_the_spec():
    import optuna

    import share_search as ss
    from share_search.spec.registry import METRICS, SAMPLERS
    from share_search.spec.model import parse_spec

    try:
        ss.register_metric("neg_mae", higher_is_better=True, task_types=["regression"])(lambda y, out, task: 0.0)
        ss.register_sampler("qmc")(lambda seed, trials: optuna.samplers.QMCSampler(seed=seed))
        spec = parse_spec(small_spec(tasks={"a": {"type": "regression", "metric": "neg_mae"}, "b": {}}, search={"sampler": "qmc"}))
        assert spec.tasks["a"].metric == "neg_mae" and ss.get_metric("neg_mae").higher_is_better
        assert isinstance(ss.create_sampler(spec.search.sampler, seed=0, trials=3), optuna.samplers.QMCSampler)
    finally:
        METRICS.unregister("neg_mae")
        SAMPLERS.unregister("qmc")


# --------------------------------------------------------------------------- the spec imports no torch
SPEC_WITHOUT_TORCH = """
import sys
from share_search.spec.model import load_spec
spec = load_spec(sys.argv[1])
assert set(spec.families) == {"tree", "cross_stitch", "progressive"}, spec.families
assert spec.families["cross_stitch"].alpha_self.kind == "choice"
heavy = sorted(m for m in ("torch", "optuna", "ray") if m in sys.modules)
print("heavy:", heavy)
"""


def test_spec_validates_every_registry_without_importing_torch(tmp_path):
    import yaml

    spec = small_spec(
        tasks={"digit": {"metric": "f1", "extra_metrics": ["auc"]}, "odd": {}},
        families={"tree": {"first_stage_shared": False}, "cross_stitch": {"alpha_self": [0.8, 0.9]}, "progressive": {}},
        train={"weighting": ["dwa", "gradnorm"]},
        search={"sampler": "nsga2"},
    )
    path = tmp_path / "spec.yaml"
    path.write_text(yaml.safe_dump(spec))
    proc = subprocess.run([sys.executable, "-c", SPEC_WITHOUT_TORCH, str(path)], env=cli_env(), capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "heavy: []"


# --------------------------------------------------------------------------- user registrations reach the spec
def test_a_registered_weighting_is_accepted_by_parse_spec():
    """On main, ``register_weighting`` adds to one list and the spec checks another."""
    from share_search.spec.model import parse_spec
    from share_search.train.weighting import WEIGHTINGS, Weighting, register_weighting

    class Tripled(Weighting):
        name = "tripled"

    register_weighting(Tripled)
    try:
        spec = parse_spec(small_spec(train={"weighting": ["equal", "tripled"]}))
        assert spec.train.weighting.choices == ("equal", "tripled")
    finally:
        (WEIGHTINGS.unregister if hasattr(WEIGHTINGS, "unregister") else WEIGHTINGS.pop)("tripled")


def test_a_registered_optimizer_is_accepted_by_the_spec_and_trains():
    """On main the spec checked optimizers against a fixed tuple and the trainer had two if-branches."""
    import torch

    import share_search as ss
    from share_search.spec.model import parse_spec
    from share_search.spec.registry import OPTIMIZERS
    from share_search.train.loop import TrainConfig, _make_optimizer
    from share_search.arch import Phase
    from share_search.train.weighting import Equal

    made = []

    @ss.register_optimizer("adamw")
    def adamw(groups, config):
        made.append(config.lr)
        return torch.optim.AdamW(groups, lr=config.lr, weight_decay=config.weight_decay)

    try:
        spec = parse_spec(small_spec(train={"optimizer": ["adam", "adamw"]}))
        assert spec.train.optimizer.choices == ("adam", "adamw")
        w = torch.nn.Parameter(torch.zeros(3))
        opt = _make_optimizer(Phase(("a",), [([w], 2.0)]), Equal(["a"], TrainConfig()), TrainConfig(optimizer="adamw", lr=0.01))
        assert isinstance(opt, torch.optim.AdamW) and made == [0.01] and opt.param_groups[0]["lr"] == 0.02
    finally:
        OPTIMIZERS.unregister("adamw")


def test_a_family_without_a_search_space_is_refused_by_the_spec():
    from share_search.arch import Family
    from share_search.errors import SpecError
    from share_search.spec.model import parse_spec
    from share_search.spec.registry import FAMILIES, register_family

    @register_family("networks_only")
    class NetworksOnly(Family):
        pass

    try:
        with pytest.raises(SpecError, match=r"families.networks_only: family 'networks_only' has networks but no search space: register one with register_family_space"):
            parse_spec(small_spec(families={"networks_only": {}}))
    finally:
        FAMILIES.unregister("networks_only")


def test_a_family_is_unknown_until_its_plugin_is_named():
    from share_search.errors import SpecError
    from share_search.spec.model import parse_spec

    with pytest.raises(SpecError, match="families.wide_head: unknown family 'wide_head' .*name the module that registers it under plugins"):
        parse_spec(small_spec(families={"wide_head": {}}))


@pytest.mark.parametrize("plugins,key,message", [
    ("registry_plugin", "plugins", "expected a list of module names"),
    (["os; rm"], "plugins", "expected a list of module names"),
    (["no_such_plugin_module"], "plugins.0", "cannot import plugin module 'no_such_plugin_module' (ModuleNotFoundError"),
])
def test_bad_plugins_are_named(plugins, key, message):
    from share_search.errors import SpecError
    from share_search.spec.model import parse_spec

    with pytest.raises(SpecError) as err:
        parse_spec(small_spec(plugins=plugins))
    assert err.value.path == key and message in str(err.value)


def test_a_run_folders_spec_imports_no_plugin(tmp_path, monkeypatch):
    """A run folder may come from anyone: reading its spec must not run the module it names."""
    from share_search.spec.registry import FAMILIES
    from share_search.spec.model import parse_spec

    marker = tmp_path / "imported"
    (tmp_path / "planted_plugin.py").write_text(f"open({str(marker)!r}, 'w').close()\n")
    monkeypatch.chdir(tmp_path)
    data = small_spec(families={"tree": {}, "planted": {"depth": 3}}, train={"weighting": "planted_w"}, plugins=["planted_plugin"])
    spec = parse_spec(data, trust_code=False)
    assert not marker.exists() and "planted_plugin" not in sys.modules
    assert spec.families["planted"].model_dump() == {"depth": 3} and "planted" not in FAMILIES
    assert spec.to_dict()["plugins"] == ["planted_plugin"]


# --------------------------------------------------------------------------- a user's plugin end to end
@pytest.fixture
def plugin():
    """The plugin module imported here, and its registrations removed afterwards (other tests list the registries)."""
    import importlib

    from share_search.spec.registry import FAMILIES, FAMILY_SPACES, WEIGHTINGS

    module = importlib.import_module(PLUGIN)
    yield module
    FAMILIES.unregister("wide_head")
    FAMILY_SPACES.unregister("wide_head")
    WEIGHTINGS.unregister("halved")
    sys.modules.pop(PLUGIN, None)


def test_a_plugin_family_draws_itself(plugin):
    from share_search.arch.layout import layout
    from share_search.runs.drawing import to_svg

    d = layout({"family": "wide_head", "width": 16}, None, 2, tasks=["digit", "odd"])
    assert d.family == "wide_head" and d.title == "wide_head: shared trunk, heads 16 wide"
    assert [b.label for b in d.boxes if b.kind == "stage"] == ["digit odd", "digit odd"]
    assert "every head: 16 hidden units" in to_svg(d)


def _run(*args: str, cwd: Path = REPO) -> subprocess.CompletedProcess:
    return subprocess.run(cli_command(*args), env=cli_env(), cwd=cwd, capture_output=True, text=True)


def test_a_plugin_family_and_weighting_go_through_search_report_and_export(plugin, ray_session, tmp_path):
    from share_search.runs.report import study_leaderboard
    from share_search.engine.runner import run_search
    from share_search.spec.model import parse_spec

    from .runs import study_of

    spec = parse_spec(small_spec(
        families={"tree": {}, "wide_head": {"widths": [8, 16]}},
        train={"weighting": "halved"},
        search={"trials": 3, "concurrency": 2},
        plugins=[PLUGIN],
    ))
    run_dir = tmp_path / "run"
    run_search(spec, out=run_dir, show_progress=False)
    board = study_leaderboard(study_of(run_dir))
    assert set(board["state"]) == {"COMPLETE"}, board[["family", "state", "fail_reason"]]  # "halved" resolved in every worker
    assert "wide_head" in set(board["family"])
    wide_rank = int(board.loc[board["family"] == "wide_head", "rank"].min())

    untrusted = _run("report", str(run_dir), "--top", "9", "--out", str(tmp_path / "untrusted.html"))
    assert untrusted.returncode == 0, untrusted.stderr
    untrusted_html = html.unescape((tmp_path / "untrusted.html").read_text())
    assert "is not drawn: unknown family 'wide_head'" in untrusted_html and "every head:" not in untrusted_html
    trusted = _run("report", str(run_dir), "--top", "9", "--trust-code")
    assert trusted.returncode == 0, trusted.stderr
    trusted_html = html.unescape((run_dir / "report.html").read_text())
    assert "every head: 16 hidden units" in trusted_html or "every head: 8 hidden units" in trusted_html
    assert "is not drawn" not in trusted_html

    refused = _run("export", str(run_dir), "--top", str(wide_rank))
    assert refused.returncode == 2 and f"plugins '{PLUGIN}'" in refused.stderr, refused.stderr
    exported = _run("export", str(run_dir), "--top", str(wide_rank), "--trust-code")
    assert exported.returncode == 0, exported.stderr
    folder = run_dir / "export" / f"rank-{wide_rank}"
    assert json.loads((folder / "recipe.json").read_text())["arch"]["family"] == "wide_head"

    load = (
        "import sys\nfrom share_search import load_model\nfrom share_search.errors import CheckpointError\n"
        "try:\n    load_model(sys.argv[1])\nexcept CheckpointError as e:\n    print('refused:', 'trust_code=True' in str(e))\n"
        "m = load_model(sys.argv[1], trust_code=True)\nprint(type(m).__name__, sorted(m.heads))\n"
    )
    proc = subprocess.run([sys.executable, "-c", load, str(folder)], env=cli_env(), cwd=REPO, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split("\n")[:2] == ["refused: True", "WideHeadModel ['digit', 'odd']"]


# --------------------------------------------------------------------------- one set of training defaults
def test_train_config_takes_the_specs_names_and_defaults():
    import dataclasses

    from share_search.space.spaces import train_config
    from share_search.spec.model import TrainSpec, parse_spec
    from share_search.train.loop import TrainConfig

    spec_defaults = {k: (v.default.value if hasattr(v.default, "value") else v.default) for k, v in TrainSpec.model_fields.items()}
    config_defaults = {f.name: f.default for f in dataclasses.fields(TrainConfig)}
    assert config_defaults == {**spec_defaults, "seed": 0}
    spec = parse_spec(small_spec(seed=7, train={"momentum": 0.5, "patience": 2, "threads": 3}))
    values = {"optimizer": "sgd", "lr": 0.1, "weight_decay": 0.0, "epochs": 2, "batch_size": 16, "weighting": "dwa"}
    config = train_config(spec, values)
    assert (config.momentum, config.patience, config.threads, config.seed, config.optimizer) == (0.5, 2, 3, 7, "sgd")
