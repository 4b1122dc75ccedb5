"""A folder of per-sample files, as MTAN and LibMTL store NYUv2 and Cityscapes: ``data.source: path/to/folder``.

Layout: ``{split}/{field}/{index}.npy`` (also ``.png``/``.jpg``/``.jpeg``), e.g.
``train/image/0.npy``, ``train/label/0.npy``, ``val/depth/3.npy``. Splits are the folders
``train``, ``val`` and ``test`` (others are not read); train and at least one of val and
test are required. Fields are the folders inside each split; every split has the same
fields, every field of a split the same indices, every file of a field (over all splits)
the same shape and dtype. What each field holds (its kind) is declared or inferred, see
``fields``.

Before anything trains, one manifest pass (``scan_folder``) checks all of that from the
``.npy`` headers of every file (the header and the file size, so a truncated file is
found without reading it) and fully reads a few files per split and field (first, last
and evenly spaced between): an error names the file. ``.npy`` files are read with
``allow_pickle=False``; an object array is refused, never unpickled.

The split folders are official splits, made train/val/test by the rule every source with
official splits follows (``assemble_splits``): train, val and test folders are used as they
are; with train and val only (preprocessed NYUv2, whose community reports on val), the
selection split is carved from train by the seed (``data.val_fraction``) and the official
val is held out as test; with train and test, val is carved from train the same way.

A split is then held in memory (read once into arrays, today's fast path) or streamed (a
``FolderSplit``: the folder's path and the split's indices, read lazily by
``FolderSamples``, a ``torch.utils.data.Dataset``, through a seeded ``DataLoader``):
``data.in_memory`` says which; ``auto`` keeps the data in memory when its arrays take at
most ``data.in_memory_max_mb`` (default 1/8 of the machine's memory) and streams it
otherwise. Either way a trial receives the data once (arrays through Ray's object store, a
streamed split as a path), never inside its config.
"""

from __future__ import annotations

import math
import os
import random
import warnings
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
from torch import Tensor

from ..errors import DataError, SpecError
from ..spec.model import DataSpec, FieldSpec, LoaderSpec
from ._base import Dataset, LabelInfo, Split
from ._split import SPLITS, assemble_splits, subsample_rows
from .fields import check_kind, read_shape, spatial_size, to_channels_first

NPY = ".npy"
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")
SUFFIXES = (NPY, *IMAGE_SUFFIXES)
DEFAULT_INPUT = "image"
FULLY_READ_PER_FIELD = 8  # files per split and field the manifest pass reads whole
MEMORY_SHARE = 8  # data.in_memory: auto keeps at most 1/MEMORY_SHARE of the machine's memory
FLOAT_BYTES = 4

Sample = dict[str, Tensor]


# --------------------------------------------------------------------------- what the manifest finds
@dataclass(frozen=True)
class FieldInfo:
    """One field of the folder: its kind and, for every file, the stored shape and dtype."""

    name: str
    kind: str
    suffix: str
    stored_shape: tuple[int, ...]  # as on disk (channels last)
    dtype: str
    classes: int | None = None  # a mask's declared class count
    ignore: int = -1  # a mask's "no label" value

    @property
    def shape(self) -> tuple[int, ...]:
        """One sample as read (channels first)."""
        return read_shape(self.kind, self.stored_shape)


@dataclass(frozen=True)
class Manifest:
    """What ``validate`` prints about a folder source."""

    root: str
    fields: dict[str, FieldInfo]
    input: str
    in_memory: bool
    memory: str  # in memory or streamed, and why


def natural_key(index: str) -> tuple:
    """``2`` before ``10``: indices that are numbers sort as numbers, before any other names."""
    return (0, int(index), "") if index.isdigit() else (1, 0, index)


def _visible(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if not p.name.startswith("."))


def _split_folders(root: Path) -> dict[str, Path]:
    if not root.is_dir():
        where = "" if root.is_absolute() else f" (relative paths start from {Path.cwd()})"
        raise DataError(f"{root}: data folder not found{where}")
    found = {name: root / name for name in SPLITS if (root / name).is_dir()}
    if "train" not in found:
        raise DataError(f"{root}/train: missing; a folder source holds train/ and val/ or test/ split folders ({{split}}/{{field}}/{{index}}.npy)")
    if len(found) == 1:
        raise DataError(f"{root}/val: missing; beside train/ a folder source needs val/ or test/ (neither is there)")
    return found


def _field_files(split: Path) -> dict[str, dict[str, Path]]:
    """Per field folder of a split: index -> file; one supported suffix per field."""
    fields = {}
    for folder in _visible(split):
        if not folder.is_dir():
            continue
        files: dict[str, Path] = {}
        suffixes = set()
        for path in _visible(folder):
            suffix = path.suffix.lower()
            if suffix not in SUFFIXES or not path.is_file():
                raise DataError(f"{path}: not a per-sample file; a field folder holds {', '.join(SUFFIXES)} files named by index")
            suffixes.add(suffix)
            if len(suffixes) > 1:
                raise DataError(f"{path}: field folder {folder.name!r} mixes {' and '.join(sorted(suffixes))} files; keep one kind per field")
            files[path.stem] = path
        if not files:
            raise DataError(f"{folder}: an empty field folder; every field holds one file per sample")
        fields[folder.name] = files
    if not fields:
        raise DataError(f"{split}: an empty split: no field folders ({{field}}/{{index}}.npy)")
    return fields


def _check_same_indices(split: Path, fields: dict[str, dict[str, Path]]) -> tuple[str, ...]:
    every = set().union(*(set(files) for files in fields.values()))
    for name, files in fields.items():
        missing = sorted(every - set(files), key=natural_key)
        if missing:
            other = next(f for f, fs in fields.items() if missing[0] in fs)
            suffix = next(iter(files.values())).suffix
            raise DataError(
                f"{split / name / (missing[0] + suffix)}: missing; index {missing[0]} is in {split.name}/{other} "
                f"(every field needs a file per index; {len(missing)} missing in {split.name}/{name})"
            )
    return tuple(sorted(every, key=natural_key))


# --------------------------------------------------------------------------- reading one file
def npy_header(path: Path) -> tuple[tuple[int, ...], np.dtype]:
    """Shape and dtype from a ``.npy`` header, checked against the file's size; nothing unpickled."""
    try:
        with open(path, "rb") as f:
            version = np.lib.format.read_magic(f)
            read = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
            shape, _, dtype = read(f)
            offset = f.tell()
    except (OSError, ValueError, SyntaxError, EOFError) as exc:
        raise DataError(f"{path}: not a readable .npy file ({str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__})") from None
    if dtype.hasobject:
        raise DataError(f"{path}: holds Python objects (dtype {dtype}), which load only by unpickling (refused); save a numeric array")
    expected = offset + math.prod(shape) * dtype.itemsize
    size = path.stat().st_size
    if size != expected:
        what = "truncated" if size < expected else "longer than its header says"
        raise DataError(f"{path}: {what}: {size} bytes, its header promises {expected} (shape {shape}, {dtype})")
    return tuple(int(n) for n in shape), dtype


def read_stored(path: Path) -> np.ndarray:
    """A file's array as stored, channels last (an image file's (C, H, W) moved to (H, W, C))."""
    if path.suffix.lower() == NPY:
        try:
            return np.load(path, allow_pickle=False)
        except (OSError, ValueError, EOFError) as exc:
            raise DataError(f"{path}: cannot read as .npy: {str(exc).splitlines()[0][:200]}") from None
    try:
        with warnings.catch_warnings():  # torchvision 0.29 deprecates its image decoding (for TorchCodec), on every call
            warnings.simplefilter("ignore", DeprecationWarning)
            from torchvision.io import decode_image

            image = decode_image(str(path))
    except (RuntimeError, ValueError, OSError) as exc:
        raise DataError(f"{path}: cannot decode as an image: {str(exc).splitlines()[0][:200]}") from None
    return image.permute(1, 2, 0).numpy()


def check_values(array: np.ndarray, info: FieldInfo, path: Path) -> None:
    """One file against its field: shape, dtype, and values its kind allows."""
    if tuple(array.shape) != info.stored_shape or str(array.dtype) != info.dtype:
        raise DataError(
            f"{path}: shape {tuple(array.shape)} {array.dtype}, but field {info.name!r} holds {info.stored_shape} {info.dtype} "
            "(one shape and dtype per field, as its first train file)"
        )
    if info.kind == "mask":
        _check_mask(array, info, path)
    elif array.dtype.kind == "f":
        if not np.isfinite(array).all():
            raise DataError(f"{path}: {int((~np.isfinite(array)).sum())} NaN or infinite value(s); mark missing depth with 0")
        if info.kind == "depth" and array.min(initial=0) < 0:
            raise DataError(f"{path}: negative depth {float(array.min()):g}; depth is >= 0, with 0 where it is not valid")


def _check_mask(array: np.ndarray, info: FieldInfo, path: Path) -> None:
    if array.dtype.kind == "f" and not (np.isfinite(array).all() and np.array_equal(array, np.round(array))):
        raise DataError(f"{path}: mask {info.name!r} holds non-integral values; classes are whole numbers, {info.ignore} = no label")
    high = info.classes if info.classes is not None else np.inf
    bad = array[(array != info.ignore) & ((array < 0) | (array >= high))]
    if bad.size:
        allowed = f"0..{info.classes - 1}" if info.classes is not None else ">= 0"
        raise DataError(
            f"{path}: {bad.size} value(s) of mask {info.name!r} outside its classes, e.g. {bad.flat[0]:g}; "
            f"allowed: {allowed}, or {info.ignore} for no label (data.fields.{info.name}.classes)"
        )


# --------------------------------------------------------------------------- the manifest pass
def _spread(n: int, k: int) -> list[int]:
    """Up to ``k`` positions of ``n``: first, last and evenly between."""
    return sorted({round(i * (n - 1) / (k - 1)) for i in range(k)}) if n > k else list(range(n))


def scan_folder(root: Path, declared: Mapping[str, FieldSpec]) -> tuple[dict[str, FieldInfo], dict[str, tuple[str, ...]]]:
    """Check the whole folder (see the module docstring); the fields, and each split folder's indices."""
    folders = _split_folders(root)
    files = {name: _field_files(path) for name, path in folders.items()}
    names = list(files["train"])
    for split, fields in files.items():
        for name in names:
            if name not in fields:
                raise DataError(f"{folders[split] / name}: missing; train has field {name!r} and every split has the same fields")
        for name in fields:
            if name not in files["train"]:
                raise DataError(f"{folders[split] / name}: field {name!r} is not in train/ (train has {', '.join(names)})")
    for name in declared:
        if name not in names:
            raise SpecError(f"data.fields.{name}", f"{root} has no field folder {name!r} (fields: {', '.join(names)})")
    indices = {split: _check_same_indices(folders[split], fields) for split, fields in files.items()}
    infos = {name: _field_info(name, {s: files[s][name] for s in files}, declared.get(name)) for name in names}
    for split, fields in files.items():
        for name, info in infos.items():
            for position in _spread(len(indices[split]), FULLY_READ_PER_FIELD):
                path = fields[name][indices[split][position]]
                check_values(read_stored(path), info, path)
    return infos, indices


def _field_info(name: str, files: dict[str, dict[str, Path]], declared: FieldSpec | None) -> FieldInfo:
    """The field's shape and dtype from its first train file; every .npy header checked against it."""
    first = min(files["train"].items(), key=lambda item: natural_key(item[0]))[1]
    suffix = first.suffix.lower()
    if suffix == NPY:
        shape, dtype = npy_header(first)
    else:
        array = read_stored(first)
        shape, dtype = tuple(array.shape), array.dtype
    kind = check_kind(name, declared.kind if declared else None, shape, dtype, str(first))
    info = FieldInfo(
        name, kind, suffix, shape, str(dtype),
        classes=declared.classes if declared else None, ignore=declared.ignore if declared else -1,
    )  # fmt: skip
    if suffix == NPY:
        for split_files in files.values():
            for path in split_files.values():
                other_shape, other_dtype = npy_header(path)
                if other_shape != shape or other_dtype != dtype:
                    raise DataError(
                        f"{path}: shape {other_shape} {other_dtype}, but field {name!r} holds {shape} {dtype} (as {first}); "
                        "one shape and dtype per field"
                    )
    return info


def _check_sizes(fields: Mapping[str, FieldInfo], input_name: str, root: Path) -> None:
    """Every per-pixel field has the input image's height and width."""
    size = spatial_size(fields[input_name].kind, fields[input_name].stored_shape)
    if size is None:
        return
    for info in fields.values():
        other = spatial_size(info.kind, info.stored_shape)
        if other is not None and other != size:
            raise DataError(
                f"{root}/train/{info.name}: {info.kind} files are {other[0]}x{other[1]} (H x W), but the input "
                f"{input_name!r} is {size[0]}x{size[1]}; every per-pixel field has the image's size"
            )


# --------------------------------------------------------------------------- official splits
def folder_splits(
    indices: Mapping[str, tuple[str, ...]], spec: DataSpec, seed: int, root: Path
) -> tuple[dict[str, tuple[str, tuple[str, ...]]], dict[str, str]]:
    """train/val/test as ``(folder, indices)`` from the split folders, by the rule every source
    with official splits follows (``assemble_splits``), and where each came from."""
    folders = list(indices)
    pools = {
        name: Split(x=np.stack([np.full(len(idx), k), np.arange(len(idx))], axis=1), y={})  # (folder, position) per sample
        for k, (name, idx) in enumerate(indices.items())
    }
    assembled = assemble_splits(pools, spec, seed, {name: f"{root / name}/" for name in folders})
    out = {}
    for name, split in zip(SPLITS, assembled[:3]):
        (folder,) = {folders[k] for k in split.x[:, 0]}  # the rule never mixes two folders in one split
        out[name] = (folder, tuple(indices[folder][i] for i in split.x[:, 1]))
    return out, assembled[3]


# --------------------------------------------------------------------------- labels from fields
@dataclass(frozen=True)
class Derived:
    """How one label is made from a field: the field itself (a vector) or reduced (mean, mode)."""

    field: str
    reduce: str | None


def derive_labels(
    wanted: Collection[str] | None, fields: Mapping[str, FieldInfo], root: Path
) -> tuple[dict[str, Derived], dict[str, LabelInfo]]:
    """The labels the tasks read (``field`` or ``field:reduce``, keyed to task names when a mapping)."""
    if wanted is None:
        wanted = [name for name, info in fields.items() if info.kind == "vector"]
    derived, infos = {}, {}
    for label in wanted:
        task = wanted[label] if isinstance(wanted, Mapping) else None
        key = f"tasks.{task}" if task else "tasks"
        name, _, reduce = label.partition(":")
        if name not in fields:
            raise SpecError(f"{key}.label", f"{root} has no field {name!r} (fields: {', '.join(fields)})")
        info = fields[name]
        derived[label] = Derived(name, reduce or None)
        infos[label] = _label_info(info, reduce or None, key, f"{name!r} of {root}")
    return derived, infos


# A task on a field without ``reduce`` reads it whole: a vector is a regression label, a
# per-pixel field a dense label of the task type its kind gives.
DENSE_LABEL = {"mask": "segmentation", "depth": "depth", "normals": "normals"}


def _label_info(info: FieldInfo, reduce: str | None, key: str, description: str) -> LabelInfo:
    if reduce is None:
        if info.kind == "vector":
            return LabelInfo("regression", info.shape[0], None, description)
        if info.kind not in DENSE_LABEL:
            raise SpecError(
                f"{key}.reduce",
                f"field {info.name!r} is an image; a per-pixel task reads a mask, depth or normals field, "
                "and a task on an image needs reduce: mean",
            )
        if info.kind == "mask":
            if info.classes is None:
                raise SpecError(f"data.fields.{info.name}.classes", f"required for a segmentation task on mask {info.name!r}: the number of classes")
            return LabelInfo("segmentation", info.classes, tuple(str(c) for c in range(info.classes)), f"per-pixel classes of {description}")
        return LabelInfo(DENSE_LABEL[info.kind], info.shape[0], None, f"per-pixel {info.kind} of {description}")
    if reduce == "mode":
        if info.kind != "mask":
            raise SpecError(f"{key}.reduce", f"reduce: mode takes a mask's most frequent class; field {info.name!r} is {info.kind} (use mean)")
        if info.classes is None:
            raise SpecError(f"data.fields.{info.name}.classes", f"required for reduce: mode on mask {info.name!r}: the number of classes")
        return LabelInfo("multiclass", info.classes, tuple(str(c) for c in range(info.classes)), f"most frequent class of {description}")
    if info.kind not in ("image", "depth", "normals"):
        raise SpecError(f"{key}.reduce", f"reduce: mean averages an image, depth or normals field; field {info.name!r} is {info.kind} (a mask: mode)")
    return LabelInfo("regression", info.shape[0], None, f"mean over valid pixels of {description}")


def _label_size(info: FieldInfo, derived: Derived, label: LabelInfo) -> int:
    """Floats one sample's label takes in memory: the whole field read as it is, else one value per output."""
    if derived.reduce is None:
        return math.prod(info.shape)
    return label.n_outputs if label.kind == "regression" else 1


def reduce_field(value: Tensor, info: FieldInfo, reduce: str | None) -> Tensor:
    """One sample's label from its (channels-first) field; NaN when no pixel is valid. A mask
    read whole is a segmentation label: float class ids, -1 where it holds its ignore value."""
    # sums over a validity mask rather than indexing by it: a boolean index costs several times more
    if reduce is None:
        return torch.where(value == info.ignore, -1, value).float() if info.kind == "mask" else value
    nan = torch.tensor(float("nan"))
    if reduce == "mode":
        classes = int(info.classes)
        counts = torch.bincount(torch.where(value == info.ignore, classes, value).flatten(), minlength=classes + 1)[:classes]
        return counts.argmax().float() if counts.sum() else nan
    if info.kind == "depth":
        valid = value > 0
        n = valid.sum()
        return (value * valid).sum() / n if n else nan
    pixels = value.flatten(1)
    if info.kind == "normals":
        valid = pixels.abs().sum(0) > 0
        n = valid.sum()
        return (pixels * valid).sum(1) / n if n else nan.expand(pixels.shape[0]).clone()
    return pixels.mean(1)


# --------------------------------------------------------------------------- streaming
def _seed_worker(worker_id: int) -> None:
    """A loader worker's numpy and random from its torch seed (set by the loader's seeded generator)."""
    seed = torch.initial_seed() % 2**32
    np.random.seed(seed)
    random.seed(seed)


class _Shuffled(torch.utils.data.Sampler):
    """Every epoch a permutation drawn from a generator seeded as the in-memory path seeds its
    own, so a streamed split sees the same batches as the same split held in memory."""

    def __init__(self, n: int, seed: int):
        self.n, self.generator = n, torch.Generator().manual_seed(seed)

    def __len__(self) -> int:
        return self.n

    def __iter__(self):
        return iter(torch.randperm(self.n, generator=self.generator).tolist())


@dataclass(frozen=True)
class FolderSplit:
    """A split read from disk: the folder's path and the split's indices, small to pickle.

    ``transform`` (the joint augmentation, a train split's only) maps a sample's fields
    (channels-first tensors by field name, kinds in ``kinds``) to new ones before the
    labels are derived.
    """

    root: str
    folder: str
    indices: tuple[str, ...]
    fields: dict[str, FieldInfo]  # the fields read: the input and those the labels derive from
    input: str
    labels: dict[str, Derived]
    settings: LoaderSpec = field(default_factory=LoaderSpec)
    transform: Callable[[Sample], Sample] | None = None

    def __len__(self) -> int:
        return len(self.indices)

    @property
    def kinds(self) -> dict[str, str]:
        return {name: info.kind for name, info in self.fields.items()}

    def samples(self, transform: Callable[[Sample], Sample] | None = None) -> "FolderSamples":
        return FolderSamples(self, transform)

    def loader(self, batch_size: int, seed: int, shuffle: bool, pin_memory: bool, persistent: bool = True):
        """A DataLoader over this split; its shuffling and its workers' seeds come from ``seed``
        (its own generators), so it neither reads nor moves torch's global random state."""
        from torch.utils.data import DataLoader

        workers = self.settings.num_workers
        return DataLoader(
            self.samples(self.transform),
            batch_size=batch_size,
            sampler=_Shuffled(len(self), seed) if shuffle else None,
            num_workers=workers,
            pin_memory=pin_memory and self.settings.pin_memory,
            persistent_workers=persistent and workers > 0 and self.settings.persistent_workers,
            worker_init_fn=_seed_worker if workers else None,
            generator=torch.Generator().manual_seed(seed),
        )


class FolderSamples(torch.utils.data.Dataset):
    """``(input, {label: value})`` per sample, read from the split's files when asked for."""

    def __init__(self, split: FolderSplit, transform: Callable[[Sample], Sample] | None = None):
        self.split, self.transform = split, transform
        self.folder = Path(split.root) / split.folder

    def __len__(self) -> int:
        return len(self.split)

    def path(self, name: str, index: str) -> Path:
        return self.folder / name / f"{index}{self.split.fields[name].suffix}"

    def fields(self, i: int) -> Sample:
        """Sample ``i``'s fields, checked and channels-first."""
        index = self.split.indices[i]
        sample = {}
        for name, info in self.split.fields.items():
            path = self.path(name, index)
            array = read_stored(path)
            check_values(array, info, path)
            sample[name] = torch.from_numpy(to_channels_first(array, info.kind))
        return sample

    def __getitem__(self, i: int) -> tuple[Tensor, dict[str, Tensor]]:
        sample = self.fields(i)
        if self.transform is not None:
            sample = self.transform(sample)
        labels = {label: reduce_field(sample[d.field], self.split.fields[d.field], d.reduce) for label, d in self.split.labels.items()}
        return sample[self.split.input], labels


# --------------------------------------------------------------------------- in memory or streamed
def machine_memory() -> int | None:
    """This machine's memory in bytes (None where the system does not say)."""
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (AttributeError, ValueError, OSError):
        return None


def _mb(n: float) -> str:
    return f"{n / 2**20:,.0f} MB" if n >= 10 * 2**20 else f"{n / 2**20:.2f} MB"


def keep_in_memory(spec: DataSpec, nbytes: int, augmented: bool = False) -> tuple[bool, str]:
    """``data.in_memory`` applied to data whose arrays take ``nbytes``: the choice and why.

    Augmented data streams: arrays read once could not be augmented anew every epoch."""
    need = f"its arrays take {_mb(nbytes)}"
    if augmented:
        if spec.in_memory is True:
            raise SpecError("data.in_memory", "true holds arrays read once, which cannot be augmented anew every epoch; with data.augment use auto or false (streamed)")
        return False, f"streamed from disk (data.augment draws anew every epoch); in memory {need}"
    if spec.in_memory is True:
        return True, f"in memory (data.in_memory: true): {need}"
    if spec.in_memory is False:
        return False, f"streamed from disk (data.in_memory: false); in memory {need}"
    if spec.in_memory_max_mb is not None:
        bound, why = spec.in_memory_max_mb * 2**20, "data.in_memory_max_mb"
    else:
        total = machine_memory()
        if total is None:
            return False, "streamed from disk (data.in_memory: auto): this system does not say how much memory it has; set data.in_memory_max_mb"
        bound, why = total / MEMORY_SHARE, f"1/{MEMORY_SHARE} of this machine's {total / 2**30:.0f} GB; data.in_memory_max_mb sets it"
    if nbytes <= bound:
        return True, f"in memory (data.in_memory: auto): {need}, within the bound of {_mb(bound)} ({why})"
    return False, f"streamed from disk (data.in_memory: auto): {need}, over the bound of {_mb(bound)} ({why})"


def _in_memory(split: FolderSplit) -> Split:
    """Every sample read once into float32 arrays (labels NaN where missing), as other sources give them,
    with the values a streamed split gives batch by batch."""
    samples = split.samples()  # never augmented: arrays are read once, augmentation draws anew every epoch
    x = np.empty((len(split), *split.fields[split.input].shape), dtype=np.float32)
    y: dict[str, np.ndarray] = {}
    for i in range(len(split)):
        xi, yi = samples[i]
        x[i] = xi.numpy()
        for label, value in yi.items():
            if label not in y:
                y[label] = np.empty((len(split), *value.shape), dtype=np.float32)
            y[label][i] = value.numpy()
    return Split(x=x, y=y)


def _input_name(spec: DataSpec, fields: Mapping[str, FieldInfo], root: Path) -> str:
    if spec.inputs is not None and len(spec.inputs) != 1:
        raise SpecError("data.inputs", f"a folder source has one input field: give one, got {spec.inputs!r}")
    name = spec.inputs[0] if spec.inputs else DEFAULT_INPUT
    if name not in fields:
        raise SpecError("data.inputs", f"{root} has no field {name!r} to be the input (fields: {', '.join(fields)}; default: {DEFAULT_INPUT})")
    if fields[name].kind not in ("image", "vector"):
        raise SpecError("data.inputs", f"the input {name!r} is a {fields[name].kind} field; an input is an image or a vector field")
    return name


def _augmentation(spec: DataSpec, read: Mapping[str, FieldInfo]) -> Callable[[Sample], Sample] | None:
    """``data.augment`` on the fields read (None when it changes nothing)."""
    if spec.augment is None or not spec.augment.active:
        return None
    from .augment import build_augment  # imports torchvision

    ignores = sorted({f.ignore for f in read.values() if f.kind == "mask"})
    if len(ignores) > 1:
        raise SpecError("data.fields", f"data.augment pads every mask with one ignore value, but the masks read declare {ignores}")
    return build_augment(spec.augment, {name: f.kind for name, f in read.items()}, ignore_index=ignores[0] if ignores else -1)


def load_folder(
    spec: DataSpec, seed: int, labels: Collection[str] | None = None, train_transform: Callable[[Sample], Sample] | None = None
) -> Dataset:
    """The folder ``spec.source`` checked, split, cut to ``max_samples``, in memory or streamed.

    ``labels``: the labels the tasks read (``field`` or ``field:reduce``; a mapping to task
    names lets errors name the task). ``train_transform``: the joint augmentation, applied
    to the streamed train split only.
    """
    root = Path(spec.source)
    if spec.options:
        key = next(iter(spec.options))
        raise SpecError(f"data.options.{key}", f"unknown option {key!r}: a folder source takes no options")
    fields, indices = scan_folder(root, spec.fields)
    input_name = _input_name(spec, fields, root)
    _check_sizes(fields, input_name, root)
    derived, infos = derive_labels(labels, fields, root)
    splits, origin = folder_splits(indices, spec, seed, root)
    kept = subsample_rows({name: len(splits[name][1]) for name in SPLITS}, spec.max_samples, seed)
    if kept is not None:
        splits = {name: (folder, tuple(idx[i] for i in kept[name])) for name, (folder, idx) in splits.items()}
        origin = {name: f"{text}; {len(kept[name])} of them kept (data.max_samples)" for name, text in origin.items()}
    read = {name: fields[name] for name in dict.fromkeys([input_name, *(d.field for d in derived.values())])}
    if train_transform is None:
        train_transform = _augmentation(spec, read)
    streamed = {
        name: FolderSplit(str(root), folder, idx, read, input_name, derived, spec.loader, train_transform if name == "train" else None)
        for name, (folder, idx) in splits.items()
    }
    per_sample = math.prod(fields[input_name].shape) + sum(_label_size(fields[d.field], d, infos[label]) for label, d in derived.items())
    in_memory, why = keep_in_memory(spec, FLOAT_BYTES * per_sample * sum(len(s) for s in streamed.values()), augmented=train_transform is not None)
    manifest = Manifest(root=str(root), fields=fields, input=input_name, in_memory=in_memory, memory=why)
    parts: dict[str, Any] = {name: _in_memory(s) if in_memory else s for name, s in streamed.items()}
    return Dataset(
        name=root.name,
        input_shape=fields[input_name].shape,
        labels=infos,
        description=f"per-sample files in {root}",
        unused_labels=tuple(name for name in fields if name not in read),
        split_origin=origin,
        manifest=manifest,
        **parts,
    )


def with_train_transform(data: Dataset, transform: Callable[[Sample], Sample] | None) -> Dataset:
    """``data`` whose streamed train split applies ``transform`` (an in-memory split is left as it is)."""
    return replace(data, train=replace(data.train, transform=transform)) if isinstance(data.train, FolderSplit) else data
