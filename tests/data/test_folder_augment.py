"""``data.augment`` reaches a folder source's training split: the spec's augmentation is built
from the fields read, it streams (arrays read once could not be augmented anew), it never
touches val or test, and sources read whole into arrays refuse it."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
import torch
import yaml

from share_search.data import load_data
from share_search.data.augment import JointAugment
from share_search.errors import SpecError
from share_search.spec.model import DataSpec
from tests.data.folder_fixture import CLASSES, write_nyuv2

LABELS = {"label:mode": "scene", "depth:mean": "depth"}
MASK = {"label": {"kind": "mask", "classes": CLASSES}}


@pytest.fixture
def nyu(tmp_path):
    return write_nyuv2(tmp_path / "nyuv2", n_train=8, n_val=4)


def batches(split, seed):
    return [x for x, _ in split.loader(batch_size=4, seed=seed, shuffle=False, pin_memory=False)]


def test_the_spec_augmentation_streams_the_train_split_and_leaves_val_and_test_alone(nyu):
    data = load_data(DataSpec(source=str(nyu), fields=MASK, augment={"hflip": True}), seed=0, labels=LABELS)
    assert isinstance(data.train.transform, JointAugment) and data.val.transform is None and data.test.transform is None
    assert not data.manifest.in_memory and "data.augment" in data.manifest.memory
    plain = load_data(DataSpec(source=str(nyu), fields=MASK, in_memory=False), seed=0, labels=LABELS)
    # each training image is the plain one or its mirror, and over two passes some are mirrored
    augmented = torch.cat(batches(data.train, 0) + batches(data.train, 1))
    originals = torch.cat(batches(plain.train, 0) * 2)
    same = [torch.equal(a, o) for a, o in zip(augmented, originals)]
    mirrored = [torch.equal(a, torch.flip(o, dims=[-1])) for a, o in zip(augmented, originals)]
    assert all(s or m for s, m in zip(same, mirrored)) and any(mirrored) and any(same)
    for name in ("val", "test"):
        assert all(torch.equal(a, b) for a, b in zip(batches(data.split(name), 0), batches(plain.split(name), 0)))


def test_augmenting_data_held_in_memory_is_refused(nyu):
    with pytest.raises(SpecError, match=r"data.in_memory: true holds arrays read once, which cannot be augmented"):
        load_data(DataSpec(source=str(nyu), fields=MASK, augment={"hflip": True}, in_memory=True), seed=0, labels=LABELS)


def test_an_augmentation_that_changes_nothing_keeps_the_in_memory_choice(nyu):
    data = load_data(DataSpec(source=str(nyu), fields=MASK, augment={}), seed=0, labels=LABELS)
    assert data.manifest.in_memory  # small: auto keeps it in memory


def test_a_source_read_whole_refuses_augmentation_through_the_cli(tmp_path):
    np.savez(tmp_path / "d.npz", x=np.random.default_rng(0).random((60, 4), dtype=np.float32), a=np.arange(60) % 2, b=np.arange(60) % 3)
    spec = {"name": "aug", "data": {"source": str(tmp_path / "d.npz"), "augment": {"hflip": True}},
            "tasks": {"a": None, "b": None}, "families": {"tree": {}}}
    (tmp_path / "s.yaml").write_text(yaml.safe_dump(spec))
    proc = subprocess.run([sys.executable, "-m", "share_search.cli", "validate", str(tmp_path / "s.yaml")], capture_output=True, text=True, cwd=tmp_path)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "data.augment: augments the samples of a folder source as they stream" in proc.stderr + proc.stdout
    assert "Traceback" not in proc.stderr


def test_validate_states_the_augmentation(nyu, tmp_path):
    spec = {"name": "aug", "data": {"source": str(nyu), "fields": MASK, "augment": {"hflip": True, "crop": [16, 16]}},
            "tasks": {"scene": {"label": "label", "reduce": "mode"}, "depth": {"label": "depth", "reduce": "mean"}},
            "backbone": {"name": "convnet", "options": {"channels": [4], "hidden": 8}}, "families": {"tree": {}}}
    (tmp_path / "s.yaml").write_text(yaml.safe_dump(spec))
    proc = subprocess.run([sys.executable, "-m", "share_search.cli", "validate", str(tmp_path / "s.yaml")], capture_output=True, text=True, cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "augmentation: training split only" in proc.stdout and "random crop 16x16" in proc.stdout
    assert "streamed from disk (data.augment draws anew every epoch)" in proc.stdout
