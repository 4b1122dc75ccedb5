"""Exported checkpoints: weights carry a content hash, and loading never unpickles anything.

A pickle planted where the weights belong (with its hash recorded and the manifest
rewritten, as an attacker who controls the folder would do) must be refused without
running its payload.
"""

import json
import pickle
import re
from pathlib import Path

import pytest
import torch

import share_search
from share_search.arch import build_model
from share_search.arch.tree import TreeConfig
from share_search.arch.backbones import make_backbone
from share_search.errors import CheckpointError
from share_search.runs.export import EXAMPLE, RECIPE, WEIGHTS, load_model, load_weights, sha256_of, write_export, write_manifest
from share_search.train.tasks import Task

TASKS = (
    Task(name="digit", label="digit", type="multiclass", n_outputs=10, metric="accuracy"),
    Task(name="odd", label="odd", type="binary", n_outputs=1, metric="accuracy"),
)


@pytest.fixture
def exported(tmp_path) -> Path:
    torch.manual_seed(0)
    backbone = make_backbone("mlp", (8,), {"widths": [6, 4]})
    arch = TreeConfig.hard_sharing([t.name for t in TASKS], backbone.n_stages)
    model = build_model(arch, backbone, TASKS)
    plan = {"arch": arch.to_dict(), "train": {"lr": 0.01}}
    spec = {"name": "t", "data": {"source": "digits"}}
    return write_export(
        tmp_path / "rank-1", model=model, plan_dict=plan, tasks=TASKS, backbone=backbone,
        spec_dict=spec, metrics={"rank": 1, "trial": 3, "val": {}, "test": {}}, example_x=torch.randn(4, 8),
    )


def rewrite_weights(folder: Path, state: dict) -> None:
    """Replace an export's weights with ``state`` and record its hash, so only the layout is wrong."""
    from safetensors.torch import save_file

    save_file(state, str(folder / WEIGHTS))
    recipe = json.loads((folder / RECIPE).read_text())
    recipe["weights_sha256"] = sha256_of(folder / WEIGHTS)
    (folder / RECIPE).write_text(json.dumps(recipe))
    write_manifest(folder)


def test_export_records_the_hash_and_reloads_the_same_network(exported):
    recipe = json.loads((exported / RECIPE).read_text())
    assert re.fullmatch(r"[0-9a-f]{64}", recipe["weights_sha256"])
    assert recipe["weights_sha256"] == sha256_of(exported / WEIGHTS)
    assert_reproduces_example(share_search.load_model(exported), exported)


def assert_reproduces_example(model, folder: Path) -> None:
    """The loaded network gives the outputs the export recorded for its example batch."""
    from safetensors.torch import load_file

    example = load_file(str(folder / EXAMPLE))
    with torch.no_grad():
        out = model(example["x"])
    for task in TASKS:
        torch.testing.assert_close(out[task.name], example[f"out.{task.name}"])


def test_truncated_weights_are_rejected(exported):
    path = exported / WEIGHTS
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match=r"weights\.safetensors: content hash .* does not match the recorded .*truncated or was changed"):
        load_model(exported)


def test_tampered_weights_of_the_same_size_are_rejected(exported):
    path = exported / WEIGHTS
    data = bytearray(path.read_bytes())
    data[-5] ^= 0xFF  # one byte of tensor data; the file still parses as safetensors
    path.write_bytes(bytes(data))
    load_weights(path)  # readable...
    with pytest.raises(CheckpointError, match="does not match the recorded"):
        load_model(exported)  # ...but not what was exported


class _Payload:
    """Unpickling this writes a file: proof that pickled code ran."""

    def __init__(self, target: Path):
        self.target = target

    def __reduce__(self):
        return (Path.write_text, (self.target, "pickled code ran"))


@pytest.mark.parametrize("writer", ["pickle", "torch.save"])
def test_a_planted_pickle_is_refused_without_running_it(exported, tmp_path, writer):
    proof = tmp_path / "proof.txt"
    path = exported / WEIGHTS
    if writer == "pickle":
        path.write_bytes(pickle.dumps({"w": _Payload(proof)}))
    else:
        torch.save({"w": _Payload(proof)}, path)
    recipe = json.loads((exported / RECIPE).read_text())
    recipe["weights_sha256"] = sha256_of(path)  # the hashes match: only the format protects
    (exported / RECIPE).write_text(json.dumps(recipe))
    write_manifest(exported)
    with pytest.raises(CheckpointError, match=r"weights\.safetensors: not a readable safetensors file"):
        load_model(exported)
    assert not proof.exists()


def test_missing_or_unreadable_files_name_the_file(exported):
    (exported / WEIGHTS).unlink()
    with pytest.raises(CheckpointError, match=r"weights\.safetensors: listed in manifest\.json but missing"):
        load_model(exported)
    write_manifest(exported)  # the manifest rewritten to match: the recipe still names the weights
    with pytest.raises(CheckpointError, match=r"weights\.safetensors: weights file is missing"):
        load_model(exported)
    (exported / RECIPE).write_text("{not json")
    write_manifest(exported)
    with pytest.raises(CheckpointError, match=r"recipe\.json: not valid JSON"):
        load_model(exported)
    (exported / RECIPE).unlink()
    write_manifest(exported)
    with pytest.raises(CheckpointError, match=r"not an exported model \(no recipe\.json\)"):
        load_model(exported)


def test_a_recipe_from_another_format_version_is_refused(exported):
    recipe = json.loads((exported / RECIPE).read_text())
    recipe["format_version"] = 99
    (exported / RECIPE).write_text(json.dumps(recipe))
    write_manifest(exported)
    with pytest.raises(CheckpointError, match="format_version 99 is not 1"):
        load_model(exported)


def test_no_module_of_the_package_unpickles():
    """The package's own code never calls an unpickling loader (Ray's internals are Ray's);
    ``torch.load`` only with ``weights_only=True`` (tensors and plain containers: ``backbone.weights``)."""
    package = Path(share_search.__file__).parent
    pattern = re.compile(r"\btorch\.load\((?!.*weights_only=True\))|\bpickle\.loads?\(|\bcloudpickle\.loads?\(|weights_only\s*=\s*False")
    offenders = [f"{p.relative_to(package)}:{i}" for p in package.rglob("*.py") for i, line in enumerate(p.read_text().splitlines(), 1) if pattern.search(line)]
    assert not offenders, offenders


def test_weights_laid_out_by_another_version_name_the_file(tmp_path):
    """Cross-stitch columns ran copy by copy before their linear stages were stacked, and their
    weights were saved as ``columns.<k>.<stage>.*``: such a file must fail with a clear error."""
    from share_search.arch.cross_stitch import CrossStitchConfig

    torch.manual_seed(0)
    backbone = make_backbone("mlp", (8,), {"widths": [6, 4]})
    arch = CrossStitchConfig(stages=(0,))
    model = build_model(arch, backbone, TASKS)
    folder = write_export(
        tmp_path / "rank-1", model=model, plan_dict={"arch": arch.to_dict(), "train": {}}, tasks=TASKS, backbone=backbone,
        spec_dict={"name": "t"}, metrics={"rank": 1, "trial": 0, "val": {}, "test": {}}, example_x=torch.randn(2, 8),
    )
    load_model(folder)  # as written, it loads
    old = {k: v for k, v in model.state_dict().items() if not k.startswith("stages.")}
    for k in range(len(TASKS)):
        for i, stage in enumerate(model.column(k)):
            old.update({f"columns.{k}.{i}.{name}": t.contiguous() for name, t in stage.state_dict().items()})
    rewrite_weights(folder, old)
    with pytest.raises(CheckpointError) as caught:
        load_model(folder)
    assert re.search(r"weights\.safetensors: weights do not fit the recipe's network: missing stages\.0\.layers\.1\.weight, .* and \d+ more; "
                     r"unexpected columns\.0\.0\.1\.\w+, ", str(caught.value)), str(caught.value)


def test_weights_of_the_wrong_shape_name_the_file(exported):
    state = load_weights(exported / WEIGHTS)
    name = next(iter(state))
    state[name] = torch.zeros(3, 3)
    rewrite_weights(exported, state)
    with pytest.raises(CheckpointError, match=rf"weights\.safetensors: weights do not fit the recipe's network: .*other shapes {re.escape(name)} \[3, 3\] in the file"):
        load_model(exported)
