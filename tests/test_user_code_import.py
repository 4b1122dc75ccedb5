"""One import rule for a user's ``module:function``, data source and backbone alike: the
current folder first, as ``python -m`` would put it (issue 16, item 15).

The ``share-search`` console script does not put the current folder on ``sys.path``, so
a backbone module beside the spec was not found while a data module beside it was.
"""

import os
import subprocess
import sys

import pytest
import yaml

from share_search.errors import SpecError
from share_search.train.problem import load_problem
from share_search.spec.model import parse_spec
from tests.runs import cli_env

# two modules: once imported, a module is found in sys.modules whatever the path says
DATA, STAGES = "user_data_for_import_rule", "user_stages_for_import_rule"
CODE = {
    DATA: '''
import numpy as np

def load():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(200, 6)).astype("float32")
    return {"x": x, "y": (x[:, 0] > 0).astype(int), "z": (x[:, 1] > 0).astype(int)}
''',
    STAGES: '''
from share_search.arch.backbones import mlp

def stages(input_shape, width=5):
    return mlp(input_shape, (width,))
''',
}


def write_modules(folder) -> None:
    for name, code in CODE.items():
        (folder / f"{name}.py").write_text(code)


def spec_dict(data: str = f"{DATA}:load", backbone: str = f"{STAGES}:stages") -> dict:
    return {
        "name": "import-rule",
        "data": {"source": data},
        "tasks": {"y": {"metric": "accuracy"}, "z": {"metric": "accuracy"}},
        "backbone": {"name": backbone, "options": {"width": 5}},
        "families": {"tree": {}},
    }


@pytest.fixture
def beside_the_spec(tmp_path, monkeypatch):
    """The user's module in the current folder, and the current folder not on ``sys.path``
    (as under the ``share-search`` console script)."""
    write_modules(tmp_path)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", [p for p in sys.path if p not in ("", ".", os.getcwd())])
    for name in CODE:
        monkeypatch.delitem(sys.modules, name, raising=False)
    return tmp_path


def test_a_backbone_beside_the_spec_is_found_like_a_data_source(beside_the_spec):
    problem = load_problem(parse_spec(spec_dict()))
    assert problem.backbone.name == f"{STAGES}:stages" and problem.backbone.stage_shapes == ((5,),)
    assert problem.data.input_shape == (6,)
    assert str(beside_the_spec) not in sys.path  # the folder is on the path only while importing


@pytest.mark.parametrize("key, module", [("data.source", DATA), ("backbone.name", STAGES)])
def test_both_keys_fail_alike(beside_the_spec, key, module):
    source = f"{module}:nothing"
    spec = spec_dict(data=source) if key == "data.source" else spec_dict(backbone=source)
    with pytest.raises(SpecError, match=rf"^{key}: module '{module}' has no function 'nothing'$"):
        load_problem(parse_spec(spec))


def test_validate_finds_both_without_the_current_folder_on_the_path(tmp_path):
    """The command as installed: ``python -P`` leaves the current folder off ``sys.path``,
    as the ``share-search`` console script does."""
    write_modules(tmp_path)
    (tmp_path / "spec.yaml").write_text(yaml.safe_dump(spec_dict()))
    done = subprocess.run(
        [sys.executable, "-P", "-m", "share_search.cli", "validate", "spec.yaml"],
        cwd=tmp_path, env=cli_env(), capture_output=True, text=True, timeout=300,
    )
    assert done.returncode == 0, done.stderr
    assert "import-rule: spec is valid" in done.stdout, done.stdout
