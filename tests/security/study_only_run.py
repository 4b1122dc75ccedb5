"""A run folder made without Ray: share-search's own spec file and study, with trials added
by hand as a search records them. Security tests tamper with copies of it in seconds."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import optuna
import yaml
from optuna.distributions import CategoricalDistribution, FloatDistribution

from share_search.train.problem import load_problem
from share_search.spec.model import parse_spec
from share_search.runs.study import create_or_load_study, open_storage, storage_url
from tests.runs import SMALL

SPEC_FILE = "spec.resolved.yaml"
# (family, role, validation accuracy of digit and odd, lr): the first is the single-task baseline
TRIALS = [
    ("tree", "single_task", (0.80, 0.90), 0.01),
    ("tree", None, (0.84, 0.91), 0.003),
    ("cross_stitch", None, (0.78, 0.93), 0.03),
    ("cross_stitch", None, (0.82, 0.88), 0.001),
]


def make_run(run_dir: Path) -> Path:
    """A finished run of ``tests.runs.SMALL`` (digits, tasks digit and odd, built-in mlp)."""
    spec = parse_spec(SMALL)
    problem = load_problem(spec)  # built-in data and backbone only
    run_dir.mkdir(parents=True)
    (run_dir / SPEC_FILE).write_text(spec.to_yaml())
    study = create_or_load_study(spec, problem, open_storage(storage_url(spec, run_dir)), resume=False)
    distributions = {"family": CategoricalDistribution(["tree", "cross_stitch"]), "lr": FloatDistribution(1e-4, 0.1, log=True)}
    base = TRIALS[0][2]
    for family, role, (digit, odd), lr in TRIALS:
        arch = {"family": "tree", "stages": [[["digit", "odd"]]]} if family == "tree" else {"family": family}
        dm = 100 / 2 * ((digit - base[0]) / base[0] + (odd - base[1]) / base[1])
        attrs = {
            "family": family, "arch": f"{family}: lr {lr}", "arch_json": json.dumps(arch), "params": 1000, "macs": 2000,
            "val": {"digit": {"accuracy": digit}, "odd": {"accuracy": odd}}, "time_s": 1.0, "best_epoch": 1,
            "history": [{"epoch": 1, "phase": "all", "digit.accuracy": digit, "odd.accuracy": odd}],
        }
        if role:
            attrs["role"] = role
        study.add_trial(optuna.trial.create_trial(params={"family": family, "lr": lr}, distributions=distributions, values=[dm], user_attrs=attrs))
    return run_dir


def copy_run(template: Path, run_dir: Path) -> Path:
    shutil.copytree(template, run_dir)
    return run_dir


def tamper(run_dir: Path, key: str, value: str) -> None:
    """Rewrite one ``section.field`` of the run folder's spec file, as an attacker would."""
    section, field = key.split(".")
    spec = yaml.safe_load((run_dir / SPEC_FILE).read_text())
    spec[section][field] = value
    (run_dir / SPEC_FILE).write_text(yaml.safe_dump(spec, sort_keys=False))


def study_names(run_dir: Path) -> list[str]:
    return [s.study_name for s in optuna.get_all_study_summaries(f"sqlite:///{run_dir / 'study.db'}", include_best_trial=False)]
