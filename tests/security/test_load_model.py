"""``load_model`` on an export from elsewhere: it imports nothing the export names unless
the caller trusts it, and checks every file's hash before it reads any of them.

The attack of issue 16: an export folder holding ``evil.py`` whose recipe names
``<folder>.evil:f`` as its backbone, loaded from the folder's parent (on ``sys.path`` as in
``python -c`` or a notebook). The attacker controls the folder, so the tests rewrite its
manifest to match, as the attacker would.
"""

import hashlib
import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from share_search import CheckpointError, load_model
from share_search.arch import build_model
from share_search.arch.tree import TreeConfig
from share_search.arch.backbones import make_backbone, mlp
from share_search.runs.export import RECIPE, write_export
from tests.runs import cli_env
from tests.test_checkpoints import TASKS, assert_reproduces_example


def export_to(folder: Path, backbone_name: str = "mlp", options: dict | None = None) -> Path:
    """A real export of a hard-sharing network, written as ``share-search export`` writes one."""
    torch.manual_seed(0)
    backbone = make_backbone(backbone_name, (8,), options if options is not None else {"widths": [6, 4]})
    arch = TreeConfig.hard_sharing([t.name for t in TASKS], backbone.n_stages)
    return write_export(
        folder, model=build_model(arch, backbone, TASKS), plan_dict={"arch": arch.to_dict(), "train": {"lr": 0.01}},
        tasks=TASKS, backbone=backbone, spec_dict={"name": "t", "data": {"source": "digits"}},
        metrics={"rank": 1, "trial": 0, "val": {}, "test": {}}, example_x=torch.randn(4, 8),
    )


def edit_recipe(folder: Path, change) -> None:
    recipe = json.loads((folder / RECIPE).read_text())
    change(recipe)
    (folder / RECIPE).write_text(json.dumps(recipe))


def reseal(folder: Path) -> None:
    """What an attacker who read the format does: list every file with its sha256."""
    files = {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir()) if p.name != "manifest.json"}
    (folder / "manifest.json").write_text(json.dumps({"kind": "share-search export", "files": files}))


def plant_evil(folder: Path, marker: Path) -> None:
    """``evil.py`` in the export writes ``marker`` when imported; the recipe names it."""
    (folder / "evil.py").write_text(
        f"import pathlib\npathlib.Path({str(marker)!r}).write_text('evil.py ran')\nfrom share_search.arch.backbones import mlp as f\n"
    )
    edit_recipe(folder, lambda r: r["backbone"].update(name=f"{folder.name}.evil:f"))


def test_loading_an_export_never_runs_the_code_it_names(tmp_path):
    """The attack as a user meets it: ``python -c "ss.load_model('mymodel')"`` in the folder above."""
    folder = export_to(tmp_path / "mymodel")
    marker = tmp_path / "pwned"
    plant_evil(folder, marker)
    reseal(folder)
    script = "import share_search as ss; ss.load_model('mymodel')"
    done = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, env=cli_env(), capture_output=True, text=True, timeout=300)
    assert not marker.exists(), "load_model imported evil.py from the export"
    assert done.returncode != 0
    last = done.stderr.strip().splitlines()[-1]
    assert "CheckpointError" in last and "backbone 'mymodel.evil:f' is not built in" in last, done.stderr
    assert "load_model(path, trust_code=True)" in last and "load_model(path, backbone=" in last, last


def test_a_planted_file_the_manifest_does_not_list_is_refused(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    folder = export_to(tmp_path / "mymodel")
    marker = tmp_path / "pwned"
    plant_evil(folder, marker)  # the manifest is left as written
    with pytest.raises(CheckpointError, match=r"mymodel/evil\.py: not listed in manifest\.json"):
        load_model(folder, trust_code=True)  # even a caller who trusts code gets only what was exported
    (folder / "evil.py").unlink()
    with pytest.raises(CheckpointError, match=r"mymodel/recipe\.json: content hash .* does not match the recorded"):
        load_model(folder, trust_code=True)
    assert not marker.exists()


def test_trust_code_or_the_callers_builder_loads_a_user_backbone(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    module = "user_stages_for_load_model"
    (tmp_path / f"{module}.py").write_text("from share_search.arch.backbones import mlp\n\ndef stages(input_shape, widths=(6, 4)):\n    return mlp(input_shape, widths)\n")
    folder = export_to(tmp_path / "export" / "rank-1", f"{module}:stages", {})
    monkeypatch.delitem(sys.modules, module)

    with pytest.raises(CheckpointError) as refused:
        load_model(folder)
    message = str(refused.value)
    assert f"backbone '{module}:stages' is not built in" in message
    assert "load_model(path, trust_code=True)" in message and "load_model(path, backbone=<your stage builder>)" in message
    assert module not in sys.modules, "the refused load imported the backbone's module"

    model = load_model(folder, backbone=lambda shape, **options: mlp(shape, (6, 4)))
    assert module not in sys.modules
    assert_reproduces_example(model, folder)

    model = load_model(folder, trust_code=True)
    assert module in sys.modules
    assert_reproduces_example(model, folder)
    assert not model.training and [t.name for t in model.tasks] == ["digit", "odd"]
    assert model.recipe["backbone"]["name"] == f"{module}:stages"


@pytest.mark.parametrize(
    "tamper, words",
    [
        (lambda r: r["tasks"][1].update(metric="f1"), r"recipe\.json: content hash .* does not match the recorded"),
        (lambda r: r["spec"].update(name="other"), r"recipe\.json: content hash .* does not match the recorded"),
    ],
    ids=["a-task", "the-spec"],
)
def test_a_recipe_changed_after_export_is_refused(tmp_path, tamper, words):
    folder = export_to(tmp_path / "rank-1")
    edit_recipe(folder, tamper)
    with pytest.raises(CheckpointError, match=words):
        load_model(folder)


def test_every_file_is_checked_not_only_the_weights(tmp_path):
    folder = export_to(tmp_path / "rank-1")
    with open(folder / "MODEL_CARD.md", "a") as f:
        f.write("\nchanged\n")
    with pytest.raises(CheckpointError, match=r"MODEL_CARD\.md: content hash .* does not match"):
        load_model(folder)
    (folder / "manifest.json").unlink()
    with pytest.raises(CheckpointError, match=r"rank-1: not an exported model \(no manifest\.json; an export written before share-search recorded one must be exported again\)"):
        load_model(folder)
    (folder / "manifest.json").write_text('{"kind": "share-search export", "files": {"../../etc/passwd": "' + "0" * 64 + '"}}')
    with pytest.raises(CheckpointError, match=r"manifest\.json: not a share-search manifest"):
        load_model(folder)


@pytest.mark.parametrize(
    "shape, words",
    [
        ([1_000_000, 1_000_000], r"backbone\.input_shape must hold at most 268,435,456 values per sample, got \[1000000, 1000000\] \(1,000,000,000,000 values\)"),
        ([8, -1], r"backbone\.input_shape must be 1 to 8 positive integers, got \[8, -1\]"),
        (["8"], r"backbone\.input_shape must be 1 to 8 positive integers, got \['8'\]"),
        ([1] * 100_000, r"backbone\.input_shape must be 1 to 8 positive integers, got \[1, 1, 1"),
    ],
    ids=["terabytes", "negative", "string", "too-many-dimensions"],
)
def test_a_forged_input_shape_is_refused_before_anything_is_built(tmp_path, shape, words):
    folder = export_to(tmp_path / "rank-1")
    edit_recipe(folder, lambda r: r["backbone"].update(input_shape=shape))
    reseal(folder)
    with pytest.raises(CheckpointError, match=rf"recipe\.json: {words}"):
        load_model(folder)


def test_a_forged_width_is_refused_before_its_memory_is_allocated(tmp_path):
    """A recipe that names a 16-million-wide stage over the small weights file (1.2 GB of float32
    once built): refused from the shapes alone, the network built on the meta device, so loading
    it takes no more memory than loading the real export. Measured in a fresh process."""
    real = export_to(tmp_path / "real")
    forged = export_to(tmp_path / "rank-1")
    edit_recipe(forged, lambda r: r["backbone"]["options"].update(widths=[6, 2**24]))
    reseal(forged)
    script = (
        "import resource, sys\n"
        "from share_search import CheckpointError, load_model\n"
        "load_model(sys.argv[1])\n"  # the real one first: imports and allocator warmed
        "before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss\n"
        "try:\n"
        "    load_model(sys.argv[2])\n"
        "except CheckpointError as exc:\n"
        "    print('refused:', exc)\n"
        "print('grew_kb', resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before)\n"
    )
    done = subprocess.run([sys.executable, "-c", script, str(real), str(forged)], env=cli_env(), capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "refused:" in done.stdout and "weights do not fit the recipe's network" in done.stdout, done.stdout
    assert "[16777216, 6] in the recipe" in done.stdout, done.stdout
    grew_mb = int(done.stdout.split("grew_kb")[1]) / 1024
    assert grew_mb < 200, f"loading the forged export grew the peak memory by {grew_mb:.0f} MB"
