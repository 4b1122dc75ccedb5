"""A bad folder source through the command line: one line naming the file (or the key),
exit code 2, no traceback, nothing written (the folder is byte-for-byte as it was, no run
folder appears), and an object array is never unpickled."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Callable

import numpy as np
import pytest
import yaml

from share_search.cli import main
from tests.data.folder_fixture import CLASSES, listing, write_nyuv2

MARKER_ENV = "SHARE_SEARCH_TEST_UNPICKLED"


class Payload:
    """Unpickling this writes the file named in ``$SHARE_SEARCH_TEST_UNPICKLED``: the attack."""

    def __reduce__(self):
        return (exec, (f"open(__import__('os').environ[{MARKER_ENV!r}], 'w').write('unpickled')",))


def spec_for(root: Path, **changes) -> dict:
    spec = {
        "name": "nyu-bad",
        "data": {"source": str(root), "fields": {"label": {"kind": "mask", "classes": CLASSES}}},
        "tasks": {"scene": {"label": "label", "reduce": "mode"}, "depth": {"label": "depth", "reduce": "mean"}},
        "backbone": {"name": "convnet", "options": {"channels": [4], "hidden": 8}},
        "families": {"tree": {}},
        "train": {"epochs": 1},
        "search": {"trials": 2, "concurrency": 1},
    }
    for key, value in changes.items():
        section, _, name = key.partition("__")
        if name:
            spec[section][name] = value
        else:
            spec[section] = value
    return spec


def npy(root: Path, rel: str, array: np.ndarray) -> None:
    np.save(root / rel, array)


def truncate(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def empty_folder(path: Path) -> None:
    for child in path.iterdir():
        child.unlink()


def object_array(root: Path) -> None:
    array = np.empty((24, 32), dtype=object)
    array[0, 0] = Payload()
    np.save(root / "train/label/2.npy", array, allow_pickle=True)


def all_files(root: Path, rel: str, make: Callable[[int], np.ndarray]) -> None:
    for path in sorted((root / rel).glob("*.npy")):
        np.save(path, make(int(path.stem)))


def rename_split(root: Path, old: str, new: str) -> None:
    (root / old).rename(root / new)


H, W = 24, 32
RNG = np.random.default_rng(1)

# id, break the folder (root) -> None, spec changes, fragments of the one-line message
CASES = [
    ("missing-val-split", lambda r: shutil.rmtree(r / "val"), {}, ["nyuv2/val: missing; beside train/ a folder source needs val/ or test/"]),
    ("missing-train-split", lambda r: rename_split(r, "train", "training"), {}, ["nyuv2/train: missing"]),
    ("index-in-one-field-only", lambda r: (r / "train/depth/3.npy").unlink(), {}, ["nyuv2/train/depth/3.npy: missing; index 3 is in train/image"]),
    ("extra-index-in-one-field", lambda r: npy(r, "val/normal/9.npy", np.zeros((H, W, 3), np.float32)), {}, ["nyuv2/val/depth/9.npy: missing; index 9 is in val/normal"]),
    ("shape-differs-between-samples", lambda r: npy(r, "train/normal/5.npy", np.zeros((H, W - 1, 3), np.float32)), {},
     ["nyuv2/train/normal/5.npy: shape (24, 31, 3) float32, but field 'normal' holds (24, 32, 3) float32"]),
    ("dtype-differs-between-samples", lambda r: npy(r, "val/label/1.npy", np.zeros((H, W), np.int64)), {},
     ["nyuv2/val/label/1.npy: shape (24, 32) int64, but field 'label' holds (24, 32) float32"]),
    ("image-of-the-wrong-size", lambda r: all_files(r, "val/image", lambda i: RNG.random((H // 2, W // 2, 3), dtype=np.float32)), {},
     ["nyuv2/val/image/0.npy: shape (12, 16, 3) float32, but field 'image' holds (24, 32, 3) float32"]),
    ("depth-smaller-than-the-image", lambda r: [all_files(r, f"{s}/depth", lambda i: np.ones((H // 2, W // 2, 1), np.float32)) for s in ("train", "val")], {},
     ["nyuv2/train/depth: depth files are 12x16 (H x W), but the input 'image' is 24x32"]),
    ("corrupt-npy", lambda r: (r / "val/normal/1.npy").write_bytes(b"PK\x03\x04 this is a zip, not an array" * 20), {},
     ["nyuv2/val/normal/1.npy: not a readable .npy file"]),
    ("truncated-npy", lambda r: truncate(r / "train/image/4.npy"), {}, ["nyuv2/train/image/4.npy: truncated: ", "bytes, its header promises"]),
    ("object-dtype-npy", object_array, {}, ["nyuv2/train/label/2.npy: holds Python objects (dtype object), which load only by unpickling (refused)"]),
    ("empty-split", lambda r: [shutil.rmtree(p) for p in (r / "val").iterdir()], {}, ["nyuv2/val: an empty split: no field folders"]),
    ("empty-field-folder", lambda r: empty_folder(r / "train/normal"), {}, ["nyuv2/train/normal: an empty field folder"]),
    ("field-missing-in-a-split", lambda r: shutil.rmtree(r / "val/depth"), {}, ["nyuv2/val/depth: missing; train has field 'depth'"]),
    ("label-above-the-classes", lambda r: npy(r, "train/label/0.npy", np.full((H, W), CLASSES, np.float32)), {},
     [f"nyuv2/train/label/0.npy: {H * W} value(s) of mask 'label' outside its classes, e.g. 13; allowed: 0..12, or -1 for no label"]),
    ("label-below-zero", lambda r: npy(r, "val/label/3.npy", np.full((H, W), -2, np.float32)), {},
     ["nyuv2/val/label/3.npy: ", "outside its classes, e.g. -2"]),
    ("label-not-integral", lambda r: npy(r, "train/label/7.npy", np.full((H, W), 2.5, np.float32)), {},
     ["nyuv2/train/label/7.npy: mask 'label' holds non-integral values"]),
    ("nan-in-the-image", lambda r: npy(r, "train/image/0.npy", np.full((H, W, 3), np.nan, np.float32)), {},
     ["nyuv2/train/image/0.npy: 2304 NaN or infinite value(s)"]),
    ("negative-depth", lambda r: npy(r, "val/depth/0.npy", np.full((H, W, 1), -1.0, np.float32)), {}, ["nyuv2/val/depth/0.npy: negative depth -1"]),
    ("a-file-of-another-kind", lambda r: (r / "train/depth/notes.txt").write_text("hello"), {}, ["nyuv2/train/depth/notes.txt: not a per-sample file"]),
    ("mixed-suffixes-in-a-field", lambda r: (r / "train/image/99.png").write_bytes(b"\x89PNG"), {}, ["nyuv2/train/image/99.png: field folder 'image' mixes .npy and .png files"]),
    ("corrupt-png", lambda r: [shutil.rmtree(r / s / "image") or (r / s / "image").mkdir() or [(r / s / "image" / f"{i}.png").write_bytes(b"\x89PNG\r\n\x1a\n broken") for i in range(n)] for s, n in (("train", 8), ("val", 4))], {},
     ["nyuv2/train/image/0.png: cannot decode as an image"]),
    ("folder-not-found", lambda r: shutil.rmtree(r), {}, ["nyuv2: data folder not found"]),
    ("declared-field-not-in-the-folder", None, {"data__fields": {"segm": "mask"}}, ["data.fields.segm: ", "has no field folder 'segm' (fields: depth, image, label, normal)"]),
    ("task-field-not-in-the-folder", None, {"tasks": {"scene": {"label": "semseg", "reduce": "mode"}, "depth": {"reduce": "mean"}}},
     ["tasks.scene.label: ", "has no field 'semseg' (fields: depth, image, label, normal)"]),
    ("image-field-without-reduce", None, {"tasks": {"scene": {"label": "label", "reduce": "mode"}, "image": {}}},
     ["tasks.image.reduce: field 'image' is an image; a per-pixel task reads a mask, depth or normals field"]),
    ("segmentation-without-classes", None, {"data__fields": {}, "tasks": {"seg": {"label": "label"}, "depth": {}}},
     ["data.fields.label.classes: required for a segmentation task on mask 'label'"]),
    ("mode-of-a-depth-field", None, {"tasks": {"scene": {"label": "label", "reduce": "mode"}, "depth": {"reduce": "mode"}}},
     ["tasks.depth.reduce: reduce: mode takes a mask's most frequent class; field 'depth' is depth (use mean)"]),
    ("mode-without-classes", None, {"data__fields": {}}, ["data.fields.label.classes: required for reduce: mode on mask 'label'"]),
    ("input-is-not-an-image", None, {"data__inputs": ["depth"]}, ["data.inputs: the input 'depth' is a depth field"]),
    ("workers-without-cpus", None, {"data__loader": {"num_workers": 2}, "search": {"resources": {"cpu": 1}}},
     ["search.resources.cpu: a trial that streams its data runs data.loader.num_workers=2", "needs search.resources.cpu >= 3, got 1"]),
]


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_a_bad_folder_is_one_line_naming_the_file_with_exit_2(tmp_path, capsys, monkeypatch, case):
    _, breaks, changes, fragments = case
    root = write_nyuv2(tmp_path / "nyuv2", n_train=8, n_val=4)
    if breaks is not None:
        breaks(root)
    before = listing(root) if root.exists() else None
    marker = tmp_path / "unpickled"
    monkeypatch.setenv(MARKER_ENV, str(marker))
    spec = tmp_path / "spec.yaml"
    spec.write_text(yaml.safe_dump(spec_for(root, **changes)))

    assert main(["validate", str(spec)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1, err
    assert "Traceback" not in err
    for fragment in fragments:
        assert fragment in err, err
    assert not marker.exists()
    assert (listing(root) if root.exists() else None) == before


@pytest.mark.parametrize("case", [c for c in CASES if c[0] in ("index-in-one-field-only", "truncated-npy", "object-dtype-npy")], ids=lambda c: c[0])
def test_a_run_on_a_bad_folder_writes_nothing(tmp_path, capsys, monkeypatch, case):
    """``run`` checks the folder before it makes a run folder or starts Ray."""
    _, breaks, changes, fragments = case
    root = write_nyuv2(tmp_path / "nyuv2", n_train=8, n_val=4)
    breaks(root)
    before = listing(root)
    monkeypatch.setenv(MARKER_ENV, str(tmp_path / "unpickled"))
    spec = tmp_path / "spec.yaml"
    spec.write_text(yaml.safe_dump(spec_for(root, **changes)))
    out = tmp_path / "runs" / "nyu-bad"

    assert main(["run", str(spec), "--out", str(out), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and all(f in err for f in fragments), err
    assert not (tmp_path / "runs").exists() and not (tmp_path / "unpickled").exists()
    assert listing(root) == before


def test_the_object_array_is_a_real_attack(tmp_path, monkeypatch):
    """The payload above does run when a reader allows pickles: the refusal is what stops it."""
    write_nyuv2(tmp_path / "nyuv2", n_train=3, n_val=1)
    object_array(tmp_path / "nyuv2")
    monkeypatch.setenv(MARKER_ENV, str(tmp_path / "unpickled"))
    np.load(tmp_path / "nyuv2/train/label/2.npy", allow_pickle=True)
    assert (tmp_path / "unpickled").read_text() == "unpickled"
