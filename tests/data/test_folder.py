"""A folder of per-sample files (the MTAN/LibMTL NYUv2 layout): the manifest, field kinds,
channels-first reading, the official splits, reductions to image-level labels, in memory
or streamed, and a streamed fit that trains exactly as the same data held in memory."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest
import torch

from share_search.arch import build_model
from share_search.data import load_data
from share_search.data.fields import infer_kind, to_channels_first
from share_search.data.folder import FieldInfo, FolderSplit, reduce_field, with_train_transform
from share_search.data._base import Split
from share_search.errors import DataError, SpecError
from share_search.space.spaces import reference_archs
from share_search.spec.model import DataSpec, TrainConfig, parse_spec
from share_search.train.loop import evaluate, first_inputs, fit
from share_search.train.problem import load_problem
from tests.data.folder_fixture import CLASSES, NYU_SIZE, write_nyuv2

LABELS = {"label:mode": "scene", "depth:mean": "depth", "normal:mean": "normal"}
MASK = {"label": {"kind": "mask", "classes": CLASSES}}


def folder_spec(root: Path, **data) -> DataSpec:
    return DataSpec(source=str(root), fields=MASK, **data)


def problem_spec(root: Path, **data):
    return parse_spec(
        {
            "name": "nyu",
            "data": {"source": str(root), "fields": MASK, **data},
            "tasks": {"scene": {"label": "label", "reduce": "mode"}, "depth": {"label": "depth", "reduce": "mean"}, "normal": {"label": "normal", "reduce": "mean"}},
            "backbone": {"name": "convnet", "options": {"channels": [4, 8], "hidden": 16}},
            "families": {"tree": {}},
            "search": {"resources": {"cpu": 3}},
        }
    )


@pytest.fixture
def nyu(tmp_path) -> Path:
    return write_nyuv2(tmp_path / "nyuv2", n_train=8, n_val=4)


# --------------------------------------------------------------------------- manifest and kinds
def test_the_manifest_infers_every_nyuv2_kind_and_carves_val_from_train(nyu):
    data = load_data(folder_spec(nyu, in_memory=False), seed=0, labels=LABELS)
    m = data.manifest
    assert {n: (f.kind, f.stored_shape, f.shape) for n, f in m.fields.items()} == {
        "image": ("image", (24, 32, 3), (3, 24, 32)),
        "label": ("mask", (24, 32), (24, 32)),
        "depth": ("depth", (24, 32, 1), (1, 24, 32)),
        "normal": ("normals", (24, 32, 3), (3, 24, 32)),
    }
    assert {name: (data.split(name).folder, len(data.split(name))) for name in ("train", "val", "test")} == {
        "train": ("train", 7), "val": ("train", 1), "test": ("val", 4)
    }
    assert data.split_origin == {
        "train": f"official train less the carved val: {nyu}/train/",
        "val": "carved from the official train by seed 0 (15% of its rows)",
        "test": f"official val, held out as test (no test given; selection uses the val carved from train): {nyu}/val/",
    }
    assert set(data.train.indices).isdisjoint(data.val.indices) and len(set(data.train.indices) | set(data.val.indices)) == 8
    assert data.input_shape == (3, 24, 32)
    assert {k: (v.kind, v.n_outputs) for k, v in data.labels.items()} == {
        "label:mode": ("multiclass", CLASSES), "depth:mean": ("regression", 1), "normal:mean": ("regression", 3)
    }


def test_train_val_and_test_folders_are_official_splits(tmp_path):
    root = write_nyuv2(tmp_path / "f", n_train=4, n_val=3)
    write_nyuv2(tmp_path / "t", n_train=2, n_val=1, seed=1)
    (tmp_path / "t" / "train").rename(root / "test")
    data = load_data(folder_spec(root, in_memory=False), seed=0, labels=LABELS)
    assert {name: (data.split(name).folder, len(data.split(name))) for name in ("train", "val", "test")} == {
        "train": ("train", 4), "val": ("val", 3), "test": ("test", 2)
    }
    assert data.split_origin["test"] == f"official test: {root}/test/"


def test_the_seed_decides_which_train_samples_become_val(nyu):
    vals = {seed: load_data(folder_spec(nyu, in_memory=False, val_fraction=0.25), seed=seed, labels=LABELS).val.indices for seed in range(6)}
    assert all(len(v) == 2 for v in vals.values())
    assert len(set(vals.values())) > 1
    assert vals[3] == load_data(folder_spec(nyu, in_memory=False, val_fraction=0.25), seed=3, labels=LABELS).val.indices


@pytest.mark.parametrize(
    "name, shape, dtype, kind",
    [
        ("label", (4, 5), np.float32, "mask"), ("semantic", (4, 5, 1), np.int64, "mask"), ("seg", (4, 5), np.uint8, "mask"),
        ("depth", (4, 5, 1), np.float32, "depth"), ("disparity", (4, 5), np.float32, "depth"),
        ("normal", (4, 5, 3), np.float32, "normals"), ("normals", (4, 5, 3), np.float32, "normals"),
        ("image", (4, 5, 3), np.float32, "image"), ("rgb", (4, 5, 3), np.uint8, "image"),
        ("label", (), np.int64, "vector"), ("attributes", (40,), np.float32, "vector"),
        ("classes", (4, 5), np.int32, "mask"), ("grey", (4, 5), np.float32, "image"), ("thermal", (4, 5, 1), np.float32, "image"),
        ("normal", (4, 5), np.float32, "image"), ("volume", (4, 5, 6), np.float32, None), ("cube", (2, 3, 4, 5), np.float32, None),
    ],
)
def test_the_kind_of_a_field_comes_from_its_name_then_its_shape_and_dtype(name, shape, dtype, kind):
    assert infer_kind(name, shape, np.dtype(dtype)) == kind


def test_a_field_of_no_inferable_kind_must_be_declared_and_then_reads(tmp_path):
    root = write_nyuv2(tmp_path / "f", n_train=3, n_val=2)
    for split, n in (("train", 3), ("val", 2)):
        (root / split / "extra").mkdir()
        for i in range(n):
            np.save(root / split / "extra" / f"{i}.npy", np.zeros((2, 3, 4, 5), np.float32))
    with pytest.raises(DataError, match=r"extra/0.npy: cannot tell what field 'extra' holds .* declare it: data.fields.extra"):
        load_data(folder_spec(root), seed=0, labels=LABELS)
    with pytest.raises(DataError, match=r"field 'extra' is declared depth, but its files hold shape \(2, 3, 4, 5\)"):
        load_data(DataSpec(source=str(root), fields={**MASK, "extra": "depth"}), seed=0, labels=LABELS)


def test_a_declared_kind_overrides_the_name(tmp_path):
    root = write_nyuv2(tmp_path / "f", n_train=3, n_val=2)
    data = load_data(DataSpec(source=str(root), fields={**MASK, "depth": "image"}), seed=0, labels={"depth:mean": "d", "label:mode": "s"})
    assert data.manifest.fields["depth"].kind == "image"


def test_channels_last_arrays_read_channels_first_per_kind():
    stored = np.arange(2 * 3 * 3, dtype=np.float32).reshape(2, 3, 3)
    for kind in ("image", "normals"):
        out = to_channels_first(stored, kind)
        assert out.shape == (3, 2, 3) and all(np.array_equal(out[c], stored[:, :, c]) for c in range(3))
    assert to_channels_first(stored[:, :, :1], "depth").shape == (1, 2, 3)
    mask = to_channels_first(np.array([[1.0, -1.0], [12.0, 0.0]], np.float32), "mask")
    assert mask.dtype == np.int64 and mask.tolist() == [[1, -1], [12, 0]]
    assert to_channels_first(np.full((2, 2, 3), 255, np.uint8), "image").max() == 1.0
    assert to_channels_first(np.float32(3.0), "vector").shape == (1,)


# --------------------------------------------------------------------------- reading samples
def test_a_real_size_nyuv2_sample_streams_channels_first_with_every_field(tmp_path):
    """The real 288 x 384 files, read through the Dataset: each field moved channels-first, values kept."""
    root = write_nyuv2(tmp_path / "nyuv2", n_train=3, n_val=1, size=NYU_SIZE)
    data = load_data(folder_spec(root, in_memory=False), seed=0, labels=LABELS)
    split = data.test  # the official val: val/0
    reader = split.samples()
    fields = reader.fields(0)
    stored = {name: np.load(root / "val" / name / "0.npy") for name in ("image", "label", "depth", "normal")}
    assert fields["image"].shape == (3, *NYU_SIZE) and fields["image"].dtype == torch.float32
    assert torch.equal(fields["image"], torch.from_numpy(stored["image"]).permute(2, 0, 1))
    assert fields["label"].shape == NYU_SIZE and fields["label"].dtype == torch.int64
    assert torch.equal(fields["label"], torch.from_numpy(stored["label"]).long())
    assert (fields["label"] == -1).any() and fields["label"].max() < CLASSES
    assert torch.equal(fields["depth"], torch.from_numpy(stored["depth"]).permute(2, 0, 1))
    assert torch.equal(fields["normal"], torch.from_numpy(stored["normal"]).permute(2, 0, 1))
    x, y = reader[0]
    assert torch.equal(x, fields["image"])
    assert y["depth:mean"] == pytest.approx(float(stored["depth"][stored["depth"] > 0].mean()), rel=1e-5)
    assert data.input_shape == (3, *NYU_SIZE)


def test_reductions_skip_invalid_pixels_and_give_nan_when_none_is_valid():
    mask = FieldInfo("label", "mask", ".npy", (2, 3), "float32", classes=4)
    assert reduce_field(torch.tensor([[2, 2, -1], [-1, -1, 1]]), mask, "mode").item() == 2
    assert reduce_field(torch.tensor([[1, 3, 3], [1, 1, -1]]), mask, "mode").item() == 1
    assert reduce_field(torch.tensor([[3, 3, -1], [1, 1, -1]]), mask, "mode").item() == 1  # a tie: the smaller class
    assert torch.isnan(reduce_field(torch.full((2, 3), -1), mask, "mode"))
    depth = FieldInfo("depth", "depth", ".npy", (2, 2, 1), "float32")
    assert reduce_field(torch.tensor([[[0.0, 2.0], [4.0, 0.0]]]), depth, "mean").item() == 3.0
    assert torch.isnan(reduce_field(torch.zeros(1, 2, 2), depth, "mean"))
    normals = FieldInfo("normal", "normals", ".npy", (1, 3, 3), "float32")
    value = torch.tensor([[[1.0, 0.0, 0.0]], [[0.0, 0.0, 0.0]], [[0.0, 0.0, 1.0]]])  # (3, 1, 3): pixels (1,0,0), (0,0,0), (0,0,1)
    assert reduce_field(value, normals, "mean").tolist() == [0.5, 0.0, 0.5]
    assert torch.isnan(reduce_field(torch.zeros(3, 1, 2), normals, "mean")).all()


def test_in_memory_holds_exactly_what_streaming_reads(nyu):
    streamed = load_data(folder_spec(nyu, in_memory=False), seed=0, labels=LABELS)
    held = load_data(folder_spec(nyu, in_memory=True), seed=0, labels=LABELS)
    for name in ("train", "val", "test"):
        split, arrays = streamed.split(name), held.split(name)
        assert isinstance(split, FolderSplit) and isinstance(arrays, Split)
        samples = [split.samples()[i] for i in range(len(split))]
        assert np.array_equal(np.stack([x.numpy() for x, _ in samples]), arrays.x)
        for label in LABELS:
            assert np.array_equal(np.stack([y[label].numpy() for _, y in samples]), arrays.y[label], equal_nan=True)
    assert held.train.y["normal:mean"].shape == (7, 3) and held.train.y["depth:mean"].shape == (7,)


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # torchvision 0.29 deprecates its image encoding, used here to write the files
def test_png_and_jpg_fields_read_through_torchvision(tmp_path):
    from torchvision.io import decode_png, encode_jpeg, read_file, write_png

    root = tmp_path / "f"
    rng = np.random.default_rng(0)
    for split, n in (("train", 3), ("val", 2)):
        for field in ("image", "label", "photo"):
            (root / split / field).mkdir(parents=True)
        for i in range(n):
            write_png(torch.from_numpy(rng.integers(0, 256, (3, 8, 10), dtype=np.uint8)), str(root / split / "image" / f"{i}.png"))
            write_png(torch.from_numpy(rng.integers(0, 4, (1, 8, 10), dtype=np.uint8)), str(root / split / "label" / f"{i}.png"))
            (root / split / "photo" / f"{i}.jpg").write_bytes(encode_jpeg(torch.from_numpy(rng.integers(0, 256, (3, 8, 10), dtype=np.uint8))).numpy().tobytes())
    data = load_data(DataSpec(source=str(root), fields={"label": {"kind": "mask", "classes": 4}}, in_memory=False), seed=0, labels={"label:mode": "s", "photo:mean": "p"})
    fields = data.manifest.fields
    assert (fields["image"].kind, fields["image"].stored_shape, fields["image"].shape, fields["image"].dtype) == ("image", (8, 10, 3), (3, 8, 10), "uint8")
    assert (fields["label"].kind, fields["label"].shape) == ("mask", (8, 10))
    x, y = data.test.samples()[1]
    png = decode_png(read_file(str(root / "val" / "image" / "1.png")))
    assert x.shape == (3, 8, 10) and torch.equal(x, png.float() / 255)
    assert y["photo:mean"].shape == (3,) and 0 <= float(y["photo:mean"].min()) <= 1


def test_max_samples_cuts_each_split_before_anything_is_read(nyu):
    data = load_data(folder_spec(nyu, in_memory=False, max_samples=6), seed=0, labels=LABELS)
    assert data.sizes == {"train": 4, "val": 1, "test": 2}  # 7, 1, 4 cut by 6/12, rounded, at least one each
    assert data.split_origin["train"].endswith("; 4 of them kept (data.max_samples)")


# --------------------------------------------------------------------------- in memory or streamed
def test_auto_keeps_data_in_memory_under_the_bound_and_streams_above_it(nyu):
    small = load_data(folder_spec(nyu, in_memory_max_mb=1.0), seed=0, labels=LABELS)  # 12 x (3x24x32 + 5) floats: 0.11 MB
    assert isinstance(small.train, Split) and small.manifest.in_memory
    assert "in memory (data.in_memory: auto): its arrays take 0.11 MB, within the bound of 1.00 MB (data.in_memory_max_mb)" in small.manifest.memory
    big = load_data(folder_spec(nyu, in_memory_max_mb=0.1), seed=0, labels=LABELS)
    assert isinstance(big.train, FolderSplit) and not big.manifest.in_memory
    assert "streamed from disk (data.in_memory: auto): its arrays take 0.11 MB, over the bound of 0.10 MB" in big.manifest.memory
    default = load_data(folder_spec(nyu), seed=0, labels=LABELS)
    assert "1/8 of this machine's" in default.manifest.memory
    assert isinstance(load_data(folder_spec(nyu, in_memory=False, in_memory_max_mb=100), seed=0, labels=LABELS).train, FolderSplit)


def test_a_streamed_problem_pickles_as_paths_while_an_in_memory_one_carries_its_arrays(nyu):
    """What Ray's object store receives once per search (tune.with_parameters) and each trial
    reads: a streamed split is the folder's path and its indices, however large the files."""
    on_disk = sum(p.stat().st_size for p in nyu.rglob("*.npy"))
    streamed = len(pickle.dumps(load_problem(problem_spec(nyu, in_memory=False))))
    held = len(pickle.dumps(load_problem(problem_spec(nyu, in_memory=True))))
    assert on_disk > 100_000
    assert streamed < 20_000 < held


def test_loading_keeps_torchs_global_random_state(nyu):
    before = torch.get_rng_state()
    data = load_data(folder_spec(nyu, in_memory=False, loader={"num_workers": 1}), seed=0, labels=LABELS)
    for _ in data.train.loader(batch_size=3, seed=5, shuffle=True, pin_memory=False):
        pass
    assert torch.equal(before, torch.get_rng_state())


# --------------------------------------------------------------------------- the DataLoader and the transform
def _flip_some(sample):
    """A stand-in augmentation drawing from torch's global generator: flips the image and the mask together."""
    if torch.rand(()) < 0.5:
        sample = {**sample, "image": sample["image"].flip(-1), "label": sample["label"].flip(-1)}
    return {**sample, "image": sample["image"] + 0.01 * torch.randn(())}


def _epochs(split: FolderSplit, seed: int, n: int = 2) -> list[torch.Tensor]:
    loader = split.loader(batch_size=3, seed=seed, shuffle=True, pin_memory=False)
    return [torch.cat([x for x, _ in loader]) for _ in range(n)]


def test_a_seeded_loader_with_workers_shuffles_and_augments_reproducibly(nyu):
    data = load_data(folder_spec(nyu, in_memory=False, loader={"num_workers": 2, "persistent_workers": True}), seed=0, labels=LABELS)
    train = with_train_transform(data, _flip_some).train
    first, again, other = _epochs(train, 7), _epochs(train, 7), _epochs(train, 8)
    assert all(torch.equal(a, b) for a, b in zip(first, again))
    assert not torch.equal(first[0], first[1])  # a new order and new draws every epoch
    assert not torch.equal(first[0], other[0])


def test_the_transform_applies_to_the_train_split_only(nyu):
    seen = []

    def record(sample):
        seen.append({k: (tuple(v.shape), v.dtype) for k, v in sample.items()})
        return {**sample, "image": torch.zeros_like(sample["image"])}

    data = with_train_transform(load_data(folder_spec(nyu, in_memory=False), seed=0, labels=LABELS), record)
    assert data.train.transform is record and data.val.transform is None and data.test.transform is None
    assert data.train.kinds == {"image": "image", "label": "mask", "depth": "depth", "normal": "normals"}
    x, _ = next(iter(data.train.loader(batch_size=2, seed=0, shuffle=True, pin_memory=False)))
    assert x.abs().sum() == 0
    assert seen[0] == {"image": ((3, 24, 32), torch.float32), "label": ((24, 32), torch.int64), "depth": ((1, 24, 32), torch.float32), "normal": ((3, 24, 32), torch.float32)}
    x, _ = next(iter(data.val.loader(batch_size=2, seed=0, shuffle=False, pin_memory=False)))
    assert x.abs().sum() > 0 and len(seen) == 2
    held = with_train_transform(load_data(folder_spec(nyu, in_memory=True), seed=0, labels=LABELS), record)
    assert isinstance(held.train, Split)  # arrays read once are never augmented


# --------------------------------------------------------------------------- training
@pytest.mark.parametrize("workers", [0, 2])
def test_a_streamed_fit_trains_exactly_as_the_same_data_in_memory(nyu, workers):
    """The batching seam: same batches in the same order, so the same weights, losses and metrics."""
    results = {}
    for in_memory in (True, False):
        problem = load_problem(problem_spec(nyu, in_memory=in_memory, loader={"num_workers": workers}))
        assert isinstance(problem.data.train, Split if in_memory else FolderSplit)
        arch = reference_archs(problem)[1][1]
        torch.manual_seed(0)
        model = build_model(arch, problem.backbone, problem.tasks)
        results[in_memory] = fit(model, problem.data, problem.tasks, TrainConfig(epochs=2, batch_size=3, lr=0.01, seed=4))
        results[in_memory, "export"] = evaluate(model, problem.data.test, problem.tasks, 3), first_inputs(problem.data.val, 8)
    held, streamed = results[True], results[False]
    assert [h["train_loss"] for h in held.history] == [h["train_loss"] for h in streamed.history]
    assert held.val == streamed.val and held.test == streamed.test
    assert all(torch.equal(held.state_dict[k], streamed.state_dict[k]) for k in held.state_dict)
    assert results[True, "export"][0] == results[False, "export"][0]
    assert torch.equal(results[True, "export"][1], results[False, "export"][1])


# --------------------------------------------------------------------------- spec keys
def test_the_spec_keys_of_a_folder_source_validate():
    spec = problem_spec(Path("/data/nyuv2"), in_memory="auto", in_memory_max_mb=512, loader={"num_workers": 2, "pin_memory": False})
    assert spec.data.fields["label"].kind == "mask" and spec.data.fields["label"].ignore == -1
    assert spec.data.loader.num_workers == 2 and spec.data.in_memory == "auto"
    assert spec.tasks["scene"].data_label("scene") == "label:mode" and spec.tasks["depth"].data_label("depth") == "depth:mean"
    with pytest.raises(SpecError, match=r"search.resources.cpu: a trial that streams its data runs data.loader.num_workers=2 loader process\(es\) beside its own, so it needs search.resources.cpu >= 3, got 2"):
        parse_spec({**problem_spec(Path("/d/n")).to_dict(), "data": {"source": "/d/n", "loader": {"num_workers": 2}}, "search": {"resources": {"cpu": 2}}})
    in_memory = parse_spec({**problem_spec(Path("/d/n")).to_dict(), "data": {"source": "/d/n", "in_memory": True, "loader": {"num_workers": 2}}, "search": {"resources": {"cpu": 1}}})
    assert in_memory.data.in_memory is True
    with pytest.raises(SpecError, match=r"tasks.depth: reduce: mean makes a regression label, but type is 'multiclass'"):
        parse_spec({**problem_spec(Path("/d/n")).to_dict(), "tasks": {"depth": {"reduce": "mean", "type": "multiclass"}, "s": {}}})
    with pytest.raises(SpecError, match=r"data.fields.depth: only a mask has classes, this field is kind 'depth'"):
        parse_spec({**problem_spec(Path("/d/n")).to_dict(), "data": {"source": "/d/n", "fields": {"depth": {"kind": "depth", "classes": 3}}}})
    with pytest.raises(SpecError, match=r"data.fields.depth.kind: input should be 'image', 'mask', 'depth', 'normals' or 'vector', got 'volume'"):
        parse_spec({**problem_spec(Path("/d/n")).to_dict(), "data": {"source": "/d/n", "fields": {"depth": "volume"}}})


def test_reduce_on_a_source_that_is_not_a_folder_names_the_task():
    spec = parse_spec({
        "name": "x", "data": {"source": "digits"}, "tasks": {"digit": {"reduce": "mode"}, "odd": {}},
        "backbone": {"name": "mlp"}, "families": {"tree": {}},
    })  # fmt: skip
    with pytest.raises(SpecError, match=r"tasks.digit.reduce: reduces a folder source's per-pixel field; data 'digits' is not a folder"):
        load_problem(spec)
    with pytest.raises(SpecError, match=r"data.in_memory: false streams a folder source only"):
        load_data(DataSpec(source="digits", in_memory=False), seed=0)


def test_a_relative_folder_in_a_spec_file_starts_from_the_spec_folder(tmp_path, nyu):
    from share_search.spec.model import load_spec

    spec_dir = nyu.parent / "specs"
    spec_dir.mkdir()
    text = problem_spec(Path("../nyuv2")).to_yaml()
    (spec_dir / "s.yaml").write_text(text)
    assert load_spec(spec_dir / "s.yaml").data.source == str(nyu)
