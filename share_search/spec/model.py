"""The YAML spec: frozen, validated models with defaults; errors name the key path.

A value in ``train:`` may be fixed (``lr: 0.001``), a choice list (``lr: [0.001, 0.01]``)
or a range (``lr: {low: 1e-4, high: 1e-2, log: true}``); ``Param`` holds any of the three
and knows how to ask Optuna for it.
"""

from __future__ import annotations

import difflib
import math
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Collection, Literal, Mapping, Optional, Union

import yaml
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, PlainSerializer, ValidationError, ValidationInfo, field_serializer, field_validator, model_validator

from ..errors import SpecError, shown
from .heads import HeadChoice
from .registry import FAMILIES, FAMILY_SPACES, HEADS, METRICS, OPTIMIZERS, SAMPLERS, WEIGHTINGS

MODULE_PATTERN = r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*"  # a plugin: an importable module name
NAME_PATTERN = r"[A-Za-z0-9][A-Za-z0-9_.-]*"  # the run folder's and the study's name
MAX_NAME_LENGTH = 100  # run folders, Ray trial folders and exports nest it in longer paths
# YAML 1.1 reads these (any case) as booleans or null; as names they mean different things to different tools
# Words YAML 1.1 readers turn into booleans or null. PyYAML reads `y` and `n` as strings, so a
# task may be called `y` (a common label name).
YAML_WORDS = ("yes", "no", "on", "off", "true", "false", "null", "~")


# --------------------------------------------------------------------------- searchable values
@dataclass(frozen=True)
class Param:
    """A training value that is fixed, one of a list, or drawn from a range."""

    kind: str  # "fixed" | "choice" | "range"
    value: Any = None
    choices: tuple = ()
    low: float | None = None
    high: float | None = None
    log: bool = False
    integer: bool = False

    @property
    def is_fixed(self) -> bool:
        return self.kind == "fixed"

    def suggest(self, trial, name: str):
        """Ask Optuna for this value (a fixed value is returned without a parameter)."""
        if self.kind == "fixed":
            return self.value
        if self.kind == "choice":
            return trial.suggest_categorical(name, list(self.choices))
        if self.integer:
            return trial.suggest_int(name, int(self.low), int(self.high), log=self.log)
        return trial.suggest_float(name, self.low, self.high, log=self.log)

    def grid_values(self) -> tuple:
        """The values a grid walks through; a range cannot be enumerated."""
        if self.kind == "fixed":
            return (self.value,)
        if self.kind == "choice":
            return self.choices
        raise ValueError("a range has no finite grid")

    def default(self):
        """The value used where one value must stand for the parameter (e.g. baselines)."""
        if self.kind == "fixed":
            return self.value
        if self.kind == "choice":
            return self.choices[0]
        mid = math.sqrt(self.low * self.high) if self.log else (self.low + self.high) / 2
        return int(round(mid)) if self.integer else mid

    def describe(self) -> str:
        if self.kind == "fixed":
            return repr(self.value)
        if self.kind == "choice":
            return "one of " + ", ".join(map(repr, self.choices))
        return f"{'log-' if self.log else ''}range [{self.low}, {self.high}]"


def _number_from_text(value):
    """A numeric string as its number (``"1e-3"``, ``"64"``), as pydantic's number fields take it."""
    if isinstance(value, str):
        try:
            return int(value)
        except ValueError:
            try:
                return float(value)
            except ValueError:
                pass
    return value


def _scalar(value, kind: str, allowed: Collection[str] | None):
    if kind == "float":
        number = _number_from_text(value)
        if isinstance(number, bool) or not isinstance(number, (int, float)):
            raise ValueError(f"expected a number, got {shown(value)}")
        number = float(number)
        if not math.isfinite(number):
            raise ValueError(f"expected a finite number, got {shown(value)}")
        return number
    if kind == "int":
        number = _number_from_text(value)
        if isinstance(number, bool) or not isinstance(number, int):
            raise ValueError(f"expected an integer, got {shown(value)}")
        return number
    if not isinstance(value, str):
        raise ValueError(f"expected a name, got {shown(value)}")
    if allowed is not None and value not in allowed:
        raise ValueError(f"unknown value {shown(value)} (known: {', '.join(allowed)})")
    return value


def searchable(kind: str, *, allowed: tuple | None = None, minimum: float | None = None, positive: bool = False):
    """Pydantic validator turning YAML into a ``Param`` of scalars of ``kind``."""

    def check_bounds(v):
        if positive and v <= 0:
            raise ValueError(f"must be > 0, got {v!r}")
        if minimum is not None and v < minimum:
            raise ValueError(f"must be >= {minimum}, got {v!r}")
        return v

    def parse(value, info: ValidationInfo):
        if isinstance(value, Param):
            return value
        known = None if names_unchecked(info) else allowed
        if isinstance(value, list):
            if not value:
                raise ValueError("a choice list needs at least one value, got []")
            choices = tuple(check_bounds(_scalar(v, kind, known)) for v in value)
            if len(set(choices)) != len(choices):
                raise ValueError(f"choice list has duplicates: {shown(value)}")
            return Param("choice", choices=choices) if len(choices) > 1 else Param("fixed", value=choices[0])
        if isinstance(value, dict):
            if kind == "str":
                raise ValueError(f"expected a name or a list of names, got a range {shown(value)}")
            unknown = set(value) - {"low", "high", "log"}
            if unknown or not {"low", "high"} <= set(value):
                raise ValueError(f"a range is {{low: ..., high: ..., log: true|false}}, got {shown(value)}")
            low, high = (check_bounds(_scalar(value[k], kind, None)) for k in ("low", "high"))
            log = value.get("log", False)
            if not isinstance(log, bool):
                raise ValueError(f"range 'log' must be true or false, got {shown(log)}")
            if not low < high:
                raise ValueError(f"a range needs low < high, got low={low!r}, high={high!r}")
            if log and low <= 0:
                raise ValueError(f"a log range needs low > 0, got low={low!r}")
            return Param("range", low=low, high=high, log=log, integer=(kind == "int"))
        return Param("fixed", value=check_bounds(_scalar(value, kind, known)))

    return BeforeValidator(parse)


def names_unchecked(info: ValidationInfo | None) -> bool:
    """True while reading a spec whose plugins were not imported (see ``parse_spec``)."""
    return bool(info is not None and (info.context or {}).get("unchecked_names"))


# --------------------------------------------------------------------------- sections
class _Section(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", arbitrary_types_allowed=True)


FIELD_KINDS = ("image", "mask", "depth", "normals", "vector")  # what a folder source's per-sample field holds


class FieldSpec(_Section):
    """A folder source's field as declared: ``data.fields.<name>: mask`` or ``{kind: mask, classes: 13}``."""

    kind: Literal["image", "mask", "depth", "normals", "vector"]
    classes: Optional[int] = Field(None, gt=0)  # a mask's class count: values 0..classes-1, or ``ignore``
    ignore: int = -1  # a mask's "no label" value (MTAN and LibMTL use -1)

    @model_validator(mode="before")
    @classmethod
    def _kind_alone(cls, v):
        return {"kind": v} if isinstance(v, str) else v

    @model_validator(mode="after")
    def _classes_of_a_mask(self):
        if self.classes is not None and self.kind != "mask":
            raise ValueError(f"only a mask has classes, this field is kind {self.kind!r}")
        return self


class LoaderSpec(_Section):
    """How a streamed split is read: torch DataLoader settings (``data.loader``)."""

    num_workers: int = Field(0, ge=0)  # loader processes per trial, each besides the trial's own
    pin_memory: bool = True  # used only when a trial trains on a GPU
    persistent_workers: bool = True  # keep the workers between epochs (with num_workers > 0)


SPLIT_NAMES = ("train", "val", "test")
SPLIT_FIELD = "split"  # a data file's column or array of this name says each row's split; never a label or an input
MAX_AUGMENT_SCALE = 4.0  # a scale of s holds s² times a sample's pixels before the crop: a typo (125 for 1.25) is refused, not run out of memory


def _number_pair(value, what: str) -> tuple:
    """``[a, b]`` from YAML as a tuple of two numbers (never booleans), or a ValueError naming ``what`` it should be."""
    if not isinstance(value, (list, tuple)) or len(value) != 2 or any(isinstance(v, bool) or not isinstance(v, (int, float)) for v in value):
        raise ValueError(f"expected {what}, got {shown(value)}")
    return tuple(value)


class AugmentSpec(_Section):
    """Joint augmentation of training samples (``data.augment``): every per-pixel field moves with the input.

    Applied to the training split only; validation and test samples are never augmented.
    """

    hflip: bool = Field(False, strict=True)  # flip left-right with probability 1/2
    crop: Optional[tuple[int, int]] = None  # [height, width] of a random window, padded where the sample is smaller
    scale: Optional[tuple[float, float]] = None  # [low, high]: resize by a factor drawn uniformly from it
    # a sample enlarged s times is seen as if from s times closer: its depth values are divided by s (MTAN, LibMTL)
    depth_follows_scale: bool = Field(True, strict=True)

    @field_validator("crop", mode="before")
    @classmethod
    def _crop_is_a_size(cls, v):
        if v is None:
            return v
        what = "[height, width], two positive integers (pixels)"
        pair = _number_pair(v, what)
        if not all(isinstance(n, int) and n > 0 for n in pair):
            raise ValueError(f"expected {what}, got {shown(v)}")
        return pair

    @field_validator("scale", mode="before")
    @classmethod
    def _scale_is_a_range(cls, v):
        if v is None:
            return v
        what = f"[low, high] with 0 < low <= high <= {MAX_AUGMENT_SCALE:g}"
        low, high = _number_pair(v, what)
        if not (math.isfinite(low) and math.isfinite(high) and 0 < low <= high <= MAX_AUGMENT_SCALE):
            raise ValueError(f"expected {what}, got {shown(v)}")
        return float(low), float(high)

    @field_serializer("crop", "scale")
    def _as_list(self, v):
        return None if v is None else list(v)  # spec.resolved.yaml is safe YAML: lists, not tuples

    @property
    def active(self) -> bool:
        """True when some option changes a sample (``augment: {}`` changes none)."""
        return self.hflip or self.crop is not None or self.scale is not None



class DataSpec(_Section):
    """Where the data comes from; built-in name, a .npz/.csv/.parquet file, module:function, one file per split, or a folder."""

    source: str | dict[str, str]
    inputs: Optional[list[str]] = None
    val_fraction: float = Field(0.15, gt=0, lt=0.5)
    test_fraction: float = Field(0.15, gt=0, lt=0.5)
    max_samples: Optional[int] = Field(None, gt=0)
    options: dict[str, Any] = Field(default_factory=dict)
    cache_dir: Optional[str] = None
    augment: Optional[AugmentSpec] = None  # training split only
    # a folder source: fields declared (else inferred), held in memory or streamed, how it streams
    fields: dict[str, FieldSpec] = Field(default_factory=dict)
    in_memory: Union[Literal["auto"], bool] = "auto"
    in_memory_max_mb: Optional[float] = Field(None, gt=0, allow_inf_nan=False)  # auto's bound; default 1/8 of the machine's memory
    loader: LoaderSpec = Field(default_factory=LoaderSpec)

    @field_validator("augment", mode="before")
    @classmethod
    def _augment_mapping(cls, v):
        if v is not None and not isinstance(v, (dict, AugmentSpec)):
            raise ValueError(f"expected a mapping such as {{hflip: true, crop: [H, W], scale: [0.75, 1.25]}}, got {shown(v)}")
        return v

    @field_validator("source", mode="before")
    @classmethod
    def _split_files(cls, v):
        if isinstance(v, Mapping):
            return split_files(v)
        if not isinstance(v, str):  # said here: pydantic would name the union's branch (data.source.str)
            raise ValueError(f"expected a built-in name, a file, module:function or {{train: FILE, val: FILE, test: FILE}}, got {shown(v)}")
        return v

    @field_validator("inputs")
    @classmethod
    def _split_is_not_an_input(cls, v):
        if v is not None and SPLIT_FIELD in v:
            raise ValueError(f"{SPLIT_FIELD!r} names the split column (train/val/test per row), never an input; rename that column")
        return v


def split_files(files: Mapping) -> dict[str, str]:
    """``data.source: {train: a.npz, val: b.npz, test: c.npz}``: files of one kind, a train and a val or test, in split order."""
    for split, file in files.items():
        where = f"data.source.{split}"
        if split not in SPLIT_NAMES:
            raise SpecError(where, f"unknown split {shown(split)} (known: {', '.join(SPLIT_NAMES)})")
        if not isinstance(file, str) or not is_file_source(file):
            raise SpecError(where, f"expected a .npz, .csv or .parquet file, got {shown(file)}")
    if "train" not in files:
        raise SpecError("data.source", f"one file per split needs a train file, got {', '.join(files) or 'none'}")
    if len(files) == 1:
        raise SpecError("data.source", "one file per split needs a val or test file beside train (one file alone: data.source: FILE, split at random by the seed)")
    kind = Path(files["train"]).suffix.lower()
    for split, file in files.items():
        if Path(file).suffix.lower() != kind:
            raise SpecError(f"data.source.{split}", f"every split's file is a {kind} file like data.source.train, got {shown(file)}")
    return {split: files[split] for split in SPLIT_NAMES if split in files}


REDUCE_TYPES = {"mean": "regression", "mode": "multiclass"}  # a folder field reduced to one label per sample


class TaskSpec(_Section):
    label: Optional[str] = None
    # per sample: multiclass, binary, regression; per pixel (spec.heads.DENSE_TASK_TYPES): the rest
    type: Optional[Literal["multiclass", "binary", "regression", "segmentation", "depth", "normals", "binary_dense"]] = None
    metric: Optional[str] = None
    extra_metrics: list[str] = Field(default_factory=list)
    # a per-pixel folder field made one label per sample: mean (regression over valid pixels)
    # or mode (the most frequent valid class, multiclass); without it the task is per pixel
    reduce: Optional[Literal["mean", "mode"]] = None
    head: Optional[HeadChoice] = None  # None: the head of the task's type (spec.heads.default_head)

    @model_validator(mode="after")
    def _reduce_fits_type(self):
        if self.reduce is not None and self.type not in (None, REDUCE_TYPES[self.reduce]):
            raise ValueError(f"reduce: {self.reduce} makes a {REDUCE_TYPES[self.reduce]} label, but type is {self.type!r}")
        return self

    def data_label(self, name: str) -> str:
        """The label this task reads from the data: ``label`` (or the task's name), with
        ``:<reduce>`` for a reduced folder field (two tasks may reduce one field two ways)."""
        label = self.label or name
        return f"{label}:{self.reduce}" if self.reduce else label

    @field_validator("head", mode="before")
    @classmethod
    def _known_head(cls, v, info: ValidationInfo):
        if v is None:
            return v
        head = HeadChoice.parse(v)
        if head.name not in HEADS and not names_unchecked(info):
            raise ValueError(f"unknown head {shown(head.name)} (known: {', '.join(HEADS)})")
        return head

    @field_validator("metric")
    @classmethod
    def _known_metric(cls, v, info: ValidationInfo):
        if v is not None and v not in METRICS and not names_unchecked(info):
            raise ValueError(f"unknown metric {shown(v)} (known: {', '.join(METRICS)})")
        return v

    @field_validator("extra_metrics")
    @classmethod
    def _known_metrics(cls, v, info: ValidationInfo):
        for m in v:
            if m not in METRICS and not names_unchecked(info):
                raise ValueError(f"unknown metric {shown(m)} (known: {', '.join(METRICS)})")
        return v

    @model_validator(mode="after")
    def _metric_fits_type(self):
        if self.type is not None:
            for m in [self.metric, *self.extra_metrics]:
                if m is not None and m in METRICS and self.type not in METRICS[m].task_types:
                    fits = [n for n, x in METRICS.items() if self.type in x.task_types]
                    raise ValueError(f"metric {m!r} does not fit a {self.type} task (use one of: {', '.join(fits)})")
        return self


class UncheckedOptions(BaseModel):
    """Options of a family a plugin registers, kept as written when the plugin is not imported."""

    model_config = ConfigDict(frozen=True, extra="allow")


class BackboneSpec(_Section):
    name: str = "mlp"
    options: dict[str, Any] = Field(default_factory=dict)
    weights: Optional[str] = None  # a local .safetensors or PyTorch state dict the stages start from; never downloaded


DEFAULT_LR_GAMMA = 0.1  # lr_schedule step: the usual tenfold decay
DEFAULT_LR_POWER = 0.9  # lr_schedule poly: DeepLab's


class TrainSpec(_Section):
    optimizer: Annotated[Param, searchable("str", allowed=OPTIMIZERS), PlainSerializer(param_to_yaml)] = Param("fixed", value="adam")
    lr: Annotated[Param, searchable("float", positive=True), PlainSerializer(param_to_yaml)] = Param("fixed", value=1e-3)
    weight_decay: Annotated[Param, searchable("float", minimum=0.0), PlainSerializer(param_to_yaml)] = Param("fixed", value=0.0)
    epochs: Annotated[Param, searchable("int", positive=True), PlainSerializer(param_to_yaml)] = Param("fixed", value=5)
    batch_size: Annotated[Param, searchable("int", positive=True), PlainSerializer(param_to_yaml)] = Param("fixed", value=64)
    weighting: Annotated[Param, searchable("str", allowed=WEIGHTINGS), PlainSerializer(param_to_yaml)] = Param("fixed", value="equal")
    momentum: float = Field(0.9, ge=0, lt=1)
    gradnorm_alpha: float = Field(1.5, ge=0)
    dwa_temperature: float = Field(2.0, gt=0)
    encoder_lr_mult: float = Field(1.0, gt=0, allow_inf_nan=False)  # the backbone's stages train at lr x this, heads at lr
    patience: Optional[int] = Field(None, gt=0)
    threads: int = Field(1, gt=0)
    device: Literal["auto", "cpu", "cuda"] = "auto"
    # real networks (train/precision.py, train/schedule.py): all off by default, so results stay as they were
    precision: Literal["fp32", "bf16", "fp16"] = "fp32"  # autocast dtype; fp16 adds a GradScaler and needs CUDA
    lr_schedule: Literal["constant", "cosine", "step", "poly"] = "constant"  # per optimizer step, restarted each phase
    warmup_epochs: float = Field(0.0, ge=0, allow_inf_nan=False)  # linear warm-up, in epochs (fractions allowed)
    lr_step_epochs: Optional[int] = Field(None, gt=0)  # step: epochs between decays (required there)
    lr_gamma: Optional[float] = Field(None, gt=0, le=1, allow_inf_nan=False)  # step: the decay factor (default DEFAULT_LR_GAMMA)
    lr_power: Optional[float] = Field(None, gt=0, allow_inf_nan=False)  # poly: the power (default DEFAULT_LR_POWER)
    grad_clip: Optional[float] = Field(None, gt=0, allow_inf_nan=False)  # max L2 norm of the phase's gradients
    channels_last: bool = Field(False, strict=True)  # convolutional models: NHWC memory format
    eval_every: Optional[int] = Field(None, gt=0)  # also validate every this many optimizer steps within an epoch

    @model_validator(mode="after")
    def _training_features_fit(self):
        """Settings that only mean something together: a clear error rather than a silent no-op."""
        if self.precision == "fp16" and self.device == "cpu":
            raise SpecError("train.precision", "fp16 needs a CUDA device (float16 autocast with a GradScaler), but train.device is cpu; use bf16 or fp32 on the CPU")
        for key, schedule in (("lr_step_epochs", "step"), ("lr_gamma", "step"), ("lr_power", "poly")):
            if getattr(self, key) is not None and self.lr_schedule != schedule:
                raise SpecError(f"train.{key}", f"applies to lr_schedule: {schedule} only, but lr_schedule is {self.lr_schedule}")
        if self.lr_schedule == "step" and self.lr_step_epochs is None:
            raise SpecError("train.lr_step_epochs", "lr_schedule: step needs the epochs between decays, e.g. lr_step_epochs: 10")
        fewest = min(self.epochs.grid_values()) if self.epochs.kind != "range" else self.epochs.low
        if self.warmup_epochs >= fewest:
            raise SpecError("train.warmup_epochs", f"the warm-up must end before training does: it must be < train.epochs ({fewest} at the fewest), got {self.warmup_epochs}")
        return self

    def features(self) -> str:
        """One line for ``validate``: precision, schedule, clipping, memory format, validation steps."""
        schedule = self.lr_schedule
        if self.lr_schedule == "step":
            schedule += f" (x{self.lr_gamma or DEFAULT_LR_GAMMA} every {self.lr_step_epochs} epochs)"
        elif self.lr_schedule == "poly":
            schedule += f" (power {self.lr_power or DEFAULT_LR_POWER})"
        return (
            f"precision {self.precision}, lr_schedule {schedule} per step, warmup_epochs {self.warmup_epochs:g}, "
            f"grad_clip {self.grad_clip or 'off'}, channels_last {str(self.channels_last).lower()}, "
            f"eval_every {f'{self.eval_every} steps' if self.eval_every else 'epoch ends only'}"
        )

    def searched(self) -> dict[str, Param]:
        """The parameters Optuna samples (ranges and choice lists), by name."""
        return {k: v for k, v in self.params().items() if not v.is_fixed}

    def params(self) -> dict[str, Param]:
        return {k: getattr(self, k) for k in ("optimizer", "lr", "weight_decay", "epochs", "batch_size", "weighting")}

    def concrete(self, values: Mapping[str, Any], seed: int) -> "TrainConfig":
        """One trial's TrainConfig: ``values`` for the searchable settings, this spec's for the rest."""
        settings = {name: getattr(self, name) for name in type(self).model_fields if name not in self.params()}
        return TrainConfig(**settings, **values, seed=seed)


class Resources(_Section):
    cpu: float = Field(1.0, gt=0, allow_inf_nan=False)
    gpu: float = Field(0.0, ge=0, allow_inf_nan=False)


class SchedulerSpec(_Section):
    type: Literal["asha"] = "asha"
    # epochs before the first cut: on an enumerated space (benchmarks/b3, 5 seeds) an early epoch
    # predicts the final ranking with Spearman 0.17 after 1 epoch, 0.57 after 3, 0.82 after 9
    grace_period: int = Field(3, gt=0)
    reduction_factor: float = Field(3.0, gt=1)


class ConfirmSpec(_Section):
    """The confirmation race after the search (``search.confirm``): the ``top`` best by mean
    get one more seed per round until one is left or each has ``max_seeds``; a paired t-test
    at ``alpha`` drops the clearly worse after each round (``runs.race``)."""

    top: int = Field(..., ge=2)
    max_seeds: int = Field(..., gt=1, le=100)
    alpha: float = Field(0.05, gt=0, lt=1, allow_inf_nan=False)

    def most_seed_trainings(self, repeats: int) -> int:
        """The most seeds the race can train: each candidate's and the baseline's seeds from
        ``repeats`` up to ``max_seeds``."""
        return (self.top + 1) * (self.max_seeds - repeats)


class SearchSpec(_Section):
    sampler: str = "tpe"
    objective: Literal["delta_m", "per_task"] = "delta_m"
    delta_m: Literal["primary", "all_metrics"] = "primary"  # which metrics Δm averages: DELTA_M_CONVENTIONS
    cost: Optional[Literal["params", "macs"]] = None
    trials: int = Field(20, gt=0)
    concurrency: int = Field(2, gt=0)
    resources: Resources = Field(default_factory=Resources)
    scheduler: Optional[SchedulerSpec] = None
    storage: Optional[str] = None
    export_top: int = Field(3, ge=0)
    baselines: bool = True
    out: Optional[str] = None
    # seeds per architecture: one Optuna trial, this many Ray trials (seed + r for r < repeats)
    repeats: int = Field(1, gt=0, le=100)
    confirm: Optional[ConfirmSpec] = None  # the confirmation race before export; off by default

    @field_validator("sampler")
    @classmethod
    def _known_sampler(cls, v, info: ValidationInfo):
        if v not in SAMPLERS and not names_unchecked(info):
            *most, last = [repr(n) for n in SAMPLERS]
            raise ValueError(f"the sampler must be a registered one: {', '.join(most)} or {last}, got {shown(v)}")
        return v

    @model_validator(mode="after")
    def _delta_m_needs_baselines(self):
        if self.objective == "delta_m" and not self.baselines:
            raise SpecError(
                "search.baselines",
                "false trains no single-task networks, but objective: delta_m compares every trial against them; "
                "use baselines: true or objective: per_task",
            )
        return self

    @model_validator(mode="after")
    def _scheduler_needs_scalar(self):
        if self.scheduler is not None and self.objective != "delta_m":
            raise ValueError(
                f"an ASHA scheduler needs one scalar objective; use objective: delta_m, got objective: {self.objective}"
            )
        return self

    @model_validator(mode="after")
    def _scheduler_needs_one_seed(self):
        """ASHA stops single Ray trials, and an architecture's seeds are separate Ray trials: it
        would stop some seeds of an architecture and not others, leaving means over different
        numbers of seeds (and of epochs) to compare."""
        if self.scheduler is not None and self.repeats > 1:
            raise SpecError(
                "search.repeats",
                f"search.scheduler (ASHA) stops seeds one by one, so it cannot be combined with repeats > 1; "
                f"use repeats: 1 with a scheduler, or drop search.scheduler, got repeats: {self.repeats}",
            )
        return self


    @model_validator(mode="after")
    def _confirm_adds_seeds(self):
        """The race gives each candidate seeds beyond the search's, and ranks them by paired Δm,
        which needs the single-task networks."""
        if self.confirm is None:
            return self
        if self.confirm.max_seeds <= self.repeats:
            raise SpecError(
                "search.confirm.max_seeds",
                f"the race adds seeds beyond the {self.repeats} the search gives each architecture (search.repeats), "
                f"so max_seeds must be above it, got {self.confirm.max_seeds}",
            )
        if not self.baselines:
            raise SpecError("search.confirm", "the race compares paired Δm, which needs the single-task networks; use search.baselines: true")
        least = max(self.confirm.top, 3)  # the candidates (the references may be among them), and a trial beyond the 2 references
        if self.sampler != "grid" and self.searched_trials < least:
            raise SpecError(
                "search.trials",
                f"the race's compute counts against search.trials: it may train {self.confirm.most_seed_trainings(self.repeats)} seeds "
                f"({self.race_reserve} trials of {self.repeats} seed{'s' if self.repeats > 1 else ''}), which leaves {self.searched_trials} of "
                f"{self.trials} trials to search, fewer than {least} (search.confirm.top candidates, and one trial beyond the 2 references); "
                f"raise trials to at least {self.race_reserve + least}",
            )
        return self

    @property
    def race_reserve(self) -> int:
        """Trials (of ``repeats`` seeds each) kept from ``trials`` for the confirmation race's
        worst case, so that the race's compute counts against the budget (0 without a race;
        a grid search trains its whole grid, and the race comes on top)."""
        if self.confirm is None or self.sampler == "grid":
            return 0
        return -(-self.confirm.most_seed_trainings(self.repeats) // self.repeats)

    @property
    def searched_trials(self) -> int:
        """The trials the search itself runs, the references included: ``trials`` less the race's reserve."""
        return self.trials - self.race_reserve

    def budget(self) -> str:
        """The budget in words, for ``validate`` and ``run.log``."""
        trials = f"{self.trials} trial{'s' if self.trials != 1 else ''}"
        if self.confirm is None:
            return trials
        most = self.confirm.most_seed_trainings(self.repeats)
        if self.race_reserve == 0:
            return f"{trials}, then a confirmation race of up to {most} seed trainings on top (a grid trains its whole grid)"
        return (f"{trials}: {self.searched_trials} searched (the references included), {self.race_reserve} kept for "
                f"the confirmation race (up to {most} seed trainings)")


class Spec(_Section):
    """A whole search: what to learn, from what, which sharing to try, and the budget."""

    name: str
    seed: int = Field(0, ge=0, le=2**32 - 1)  # the samplers take 32-bit seeds
    data: DataSpec
    tasks: dict[str, TaskSpec]
    backbone: BackboneSpec = Field(default_factory=BackboneSpec)
    families: dict[str, Any]
    train: TrainSpec = Field(default_factory=TrainSpec)
    search: SearchSpec = Field(default_factory=SearchSpec)
    plugins: list[str] = Field(default_factory=list)  # modules that register families, weightings, ...

    @model_validator(mode="before")
    @classmethod
    def _import_plugins(cls, data, info: ValidationInfo):
        """Import the plugin modules first, so the checks below see what they register."""
        plugins = data.get("plugins") if isinstance(data, dict) else None
        if plugins is None:
            return data
        if not isinstance(plugins, list) or not all(isinstance(m, str) and re.fullmatch(MODULE_PATTERN, m) for m in plugins):
            raise SpecError("plugins", f"expected a list of module names (a.b.c), got {shown(plugins)}")
        if (info.context or {}).get("plugins") == "import":
            from ..user_code import import_plugins

            import_plugins(plugins)
        return data

    @field_validator("name")
    @classmethod
    def _name_is_a_folder_name(cls, v):
        problem = name_problem(v)
        if problem:
            raise ValueError(problem)
        return v

    @field_validator("tasks", mode="before")
    @classmethod
    def _tasks_mapping(cls, v):
        if isinstance(v, dict):
            v = {k: ({} if t is None else t) for k, t in v.items()}
            for k in v:
                check_task_name(k)
        return v

    @field_validator("tasks")
    @classmethod
    def _at_least_two_tasks(cls, v):
        if len(v) < 2:
            raise ValueError(f"multi-task search needs at least 2 tasks, got {len(v)}")
        return v

    @model_validator(mode="after")
    def _cpus_cover_loader_workers(self):
        """A streamed split's loader processes run beside the trial's own: Ray must count them."""
        workers, cpu = self.data.loader.num_workers, self.search.resources.cpu
        if workers and self.data.in_memory is not True and cpu < workers + 1:
            raise SpecError(
                "search.resources.cpu",
                f"a trial that streams its data runs data.loader.num_workers={workers} loader process(es) beside "
                f"its own, so it needs search.resources.cpu >= {workers + 1}, got {cpu:g} (or set data.in_memory: true)",
            )
        return self

    @field_validator("tasks")
    @classmethod
    def _split_is_never_a_label(cls, v):
        for name, task in v.items():
            if (task.label or name) == SPLIT_FIELD:
                raise SpecError(
                    f"tasks.{name}.label",
                    f"{SPLIT_FIELD!r} names a data file's split column (train/val/test per row), never a label; rename that label",
                )
        return v

    @field_validator("families", mode="before")
    @classmethod
    def _families(cls, v, info: ValidationInfo):
        if v is None or (isinstance(v, (dict, list)) and not v):
            raise SpecError("families", f"needs at least one sharing family (known: {', '.join(FAMILIES)})")
        if isinstance(v, list):  # `families: [tree, cross_stitch]` means default options
            v = {name: {} for name in v}
        if not isinstance(v, dict):
            raise SpecError("families", f"expected a mapping of family name to options, got {shown(v)}")
        parsed = {}
        for name, options in v.items():
            if name not in FAMILIES:
                if names_unchecked(info):
                    parsed[name] = UncheckedOptions.model_validate(options or {})
                    continue
                raise SpecError(
                    f"families.{name}",
                    f"unknown family {shown(name)} (known: {', '.join(FAMILIES)}; a family of your own: name the module that registers it under plugins)",
                )
            if name not in FAMILY_SPACES:
                raise SpecError(
                    f"families.{name}",
                    f"family {shown(name)} has networks but no search space: register one with register_family_space({name!r})",
                )
            Options = FAMILIES.attr(name, "Options")
            try:
                parsed[name] = Options.model_validate(options or {})
            except ValidationError as exc:
                raise spec_error_from(exc, prefix=("families", name), model=Options) from None
        return parsed

    @property
    def task_names(self) -> list[str]:
        return list(self.tasks)

    def to_dict(self) -> dict[str, Any]:
        """Plain data, the form written to ``spec.resolved.yaml`` and read back by ``parse_spec``."""
        out = self.model_dump(mode="python")
        out["families"] = {k: v.model_dump(mode="json") for k, v in self.families.items()}
        if not out["plugins"]:  # specs without plugins read as they did before the key existed
            del out["plugins"]
        if out["search"]["repeats"] == 1:  # likewise one seed per architecture
            del out["search"]["repeats"]
        if out["search"]["confirm"] is None:  # and no confirmation race
            del out["search"]["confirm"]
        return out

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.to_dict(), sort_keys=False)

    def with_search(self, **changes) -> "Spec":
        """A copy with some ``search`` values changed (command-line overrides), re-validated."""
        data = self.to_dict()
        data["search"].update({k: v for k, v in changes.items() if v is not None})
        return parse_spec(data)


def name_problem(name: str) -> str | None:
    """Why ``name`` cannot name a run folder and study (None when it can); ``init`` checks its slug here too."""
    if len(name) > MAX_NAME_LENGTH:
        return f"at most {MAX_NAME_LENGTH} characters (it names the run folder), got {len(name)}: {shown(name)}"
    if not re.fullmatch(NAME_PATTERN, name):
        return f"must be letters, digits, '_', '.', '-', starting with a letter or digit (it names the run folder), got {shown(name)}"
    return None


RANK_KEYS = ("delta_m", "pareto")  # plus every task name
# ``search.delta_m``: Δm over each task's primary metric, or over all its metrics (averaged within the task first)
DELTA_M_PRIMARY, DELTA_M_ALL_METRICS = "primary", "all_metrics"
DELTA_M_CONVENTIONS = (DELTA_M_PRIMARY, DELTA_M_ALL_METRICS)
# the leaderboard's names, here because a task may not take one. The trials table (``study.trials_frame`` builds it) and what ``leaderboard`` adds; a task's
# column is ``val.<task>``, shown as ``<task>`` beside these, so no task may take one of these names
TRIAL_COLUMNS = ("trial", "state", "family", "arch", "role", "baseline", "params", "macs", "time_s", "best_epoch", "fail_reason")
RANKED_COLUMNS = ("rank", "delta_m", "pareto_front", "n_seeds", "tied_with_best", "p_vs_best")


def reserved_task_names() -> tuple[str, ...]:
    """Names a task cannot take: leaderboard columns and ``--rank-by`` keys (shown unprefixed beside ``val.<task>``)."""
    return tuple(dict.fromkeys((*TRIAL_COLUMNS, *RANKED_COLUMNS, *RANK_KEYS)))


def check_task_name(name: Any) -> None:
    """Refuse a task name that is no identifier, a YAML boolean/null word, or a leaderboard column."""
    if isinstance(name, bool) or name is None:
        raise SpecError("tasks", f"a task is named {name!r}: YAML reads an unquoted {', '.join(YAML_WORDS[:-1])} as a boolean or null; choose another name")
    if not isinstance(name, str) or not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name):
        raise SpecError("tasks", f"task names are identifiers (letters, digits, '_'), got {shown(name)}")
    if name.lower() in YAML_WORDS:
        raise SpecError(f"tasks.{name}", f"{name!r} is a YAML boolean or null word ({', '.join(YAML_WORDS[:-1])}); choose another task name")
    if name in reserved_task_names():
        raise SpecError(f"tasks.{name}", f"{name!r} is also a leaderboard column or --rank-by key ({', '.join(reserved_task_names())}); choose another task name")


def param_to_yaml(p: Param):
    """A Param as the YAML a user writes (value, list, or range mapping)."""
    if p.kind == "fixed":
        return p.value
    if p.kind == "choice":
        return list(p.choices)
    return {"low": p.low, "high": p.high, "log": p.log}


# --------------------------------------------------------------------------- errors and loading
_PYDANTIC_PREFIXES = ("Value error, ", "Assertion failed, ")


def spec_error_from(exc: ValidationError, prefix: tuple = (), model: type[BaseModel] | None = None) -> SpecError:
    """A pydantic error as a ``SpecError`` with a dotted key path and the bad value.

    Unknown keys come first, all of them, each with a "did you mean": a typo of a required
    key (``nmae:``) is the cause of its "required key is missing".
    """
    errors = exc.errors()
    unknown = sorted((e for e in errors if e["type"] == "extra_forbidden"), key=lambda e: len(e["loc"]))  # top level first
    if unknown:
        return _unknown_keys_error(unknown, prefix, model or _root_model(exc.title))
    err = errors[0]
    original = (err.get("ctx") or {}).get("error")
    if isinstance(original, SpecError):
        return original
    path = ".".join(str(p) for p in (*prefix, *err["loc"]))
    msg = err["msg"]
    for p in _PYDANTIC_PREFIXES:
        if msg.startswith(p):
            msg = msg[len(p):]
    if err["type"] == "missing":
        msg = "required key is missing"
    elif err["type"] not in ("value_error", "assertion_error") and "input" in err:
        msg = f"{msg[0].lower()}{msg[1:]}, got {shown(err['input'])}"
    return SpecError(path, msg)


MAX_UNKNOWN_KEYS_SHOWN = 5


def _unknown_keys_error(unknown: list[dict], prefix: tuple, root: type[BaseModel] | None) -> SpecError:
    """One line naming every unknown key, each with its closest known key or the known ones."""
    parts = []
    for err in unknown[:MAX_UNKNOWN_KEYS_SHOWN]:
        key = err["loc"][-1]
        section = _model_at(root, err["loc"][:-1])
        known = list(section.model_fields) if section is not None else []
        close = difflib.get_close_matches(str(key), known, n=1, cutoff=0.6)
        if close:
            hint = f", did you mean {close[0]!r}?"
        elif known:
            hint = f" (known: {', '.join(known)})"
        else:
            hint = ""
        parts.append((".".join(str(p) for p in (*prefix, *err["loc"])), f"unknown key {shown(key)}{hint}"))
    (path, first), rest = parts[0], parts[1:]
    more = len(unknown) - len(parts)
    if rest or more:
        first += "; also " + "; ".join(f"{p}: {m}" for p, m in rest) + (f"; and {more} more unknown key(s)" if more else "")
    return SpecError(path, first)


def _root_model(title: str) -> type[BaseModel] | None:
    return {"Spec": Spec}.get(title)


def _model_at(model: type[BaseModel] | None, loc) -> type[BaseModel] | None:
    """The section model a location points into (for listing the known keys)."""
    for part in loc:
        if model is None:
            return None
        field = model.model_fields.get(str(part)) if isinstance(part, str) else None
        if field is None:  # a dict-valued field (tasks.<name>): step over the key
            continue
        ann = field.annotation
        model = next((a for a in getattr(ann, "__args__", (ann,)) if isinstance(a, type) and issubclass(a, BaseModel)), None)
        if model is None and str(part) == "tasks":
            model = TaskSpec
    return model


def parse_spec(data: Any, source: str = "spec", trust_code: bool = True) -> Spec:
    """Validate plain data (already parsed YAML) into a ``Spec``; relative data paths stay relative (to the current folder).

    The spec's ``plugins`` are imported first when ``trust_code`` (a user's own spec). A spec
    read from a run folder, which may come from anyone, is read with ``trust_code=False``:
    nothing is imported, and when it lists plugins, names they might register (families,
    weightings, metrics, samplers) are taken unchecked.
    """
    if not isinstance(data, Mapping):
        raise SpecError("", f"{source}: the top level must be a mapping of sections (name, data, tasks, ...), got {type(data).__name__}")
    context = {"plugins": "import" if trust_code else "skip"}
    if not trust_code and data.get("plugins"):
        context["unchecked_names"] = True
    try:
        return Spec.model_validate(dict(data), context=context)
    except ValidationError as exc:
        raise spec_error_from(exc) from None


def load_spec(path: str | Path, trust_code: bool = True) -> Spec:
    """Read and validate a YAML spec file; relative data paths start from the spec's folder.

    ``trust_code``: import the spec's ``plugins`` (see ``parse_spec``)."""
    path = Path(path)
    if not path.is_file():
        raise SpecError("", f"spec file not found: {path}")
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise SpecError("", f"{path}: cannot read the spec: {exc.strerror or exc}") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise SpecError("", f"{path}: a spec is UTF-8 text, but byte {exc.start} is {raw[exc.start]:#04x} (is this the YAML file?)") from None
    data = read_yaml(text, str(path))
    if data is None:
        raise SpecError("", f"{path}: the file is empty")
    return _paths_from(parse_spec(data, source=str(path), trust_code=trust_code), path.parent)


# a data source is a file by its suffix, user code by ``module:function``, else a built-in's name
FILE_SUFFIXES = (".npz", ".csv", ".parquet")
MODULE_FUNCTION = re.compile(r"[A-Za-z_][\w.]*:[A-Za-z_]\w*")


def is_file_source(source: str) -> bool:
    return Path(source).suffix.lower() in FILE_SUFFIXES


def is_module_source(source: str) -> bool:
    return MODULE_FUNCTION.fullmatch(source) is not None


def is_folder_source(source: str) -> bool:
    """A folder of per-sample files is named by a path with a ``/`` (``./nyuv2``, ``~/data/nyuv2``),
    so it never reads as a built-in's name."""
    return not is_file_source(source) and not is_module_source(source) and ("/" in source or os.sep in source)


def _paths_from(spec: Spec, folder: Path) -> Spec:
    """``spec`` with relative data file paths (and ``backbone.weights``) made absolute from ``folder``, as config files are read.

    Absolute, they mean the same file from the run folder's ``spec.resolved.yaml``.
    """
    def absolute(p: str) -> str:
        p = os.path.expanduser(p)
        return p if os.path.isabs(p) else os.path.abspath(os.path.join(folder, p))

    changes = {}
    if isinstance(spec.data.source, Mapping):
        changes["source"] = {split: absolute(file) for split, file in spec.data.source.items()}
    elif is_file_source(spec.data.source) or is_folder_source(spec.data.source):
        changes["source"] = absolute(spec.data.source)
    if spec.data.cache_dir is not None:
        changes["cache_dir"] = absolute(spec.data.cache_dir)
    if changes:
        spec = spec.model_copy(update={"data": spec.data.model_copy(update=changes)})
    if spec.backbone.weights is not None:
        spec = spec.model_copy(update={"backbone": spec.backbone.model_copy(update={"weights": absolute(spec.backbone.weights)})})
    return spec


# --------------------------------------------------------------------------- safe YAML
_STR_TAG = "tag:yaml.org,2002:str"
_MERGE_TAG = "tag:yaml.org,2002:merge"
# YAML 1.2 floats PyYAML (YAML 1.1) reads as strings: 1e-3, 1E5, 2.5e3 (1.1 wants a dot and a signed exponent)
_FLOAT_1_2 = re.compile(r"^[-+]?(?:[0-9][0-9_]*(?:\.[0-9_]*)?|\.[0-9_]+)[eE][-+]?[0-9]+$")


class _SpecLoader(yaml.SafeLoader):
    """PyYAML's safe loader with YAML 1.2 floats and without aliases.

    A spec has little use for ``&anchor``/``*alias``, and nine nested aliases of nine
    make a few hundred bytes expand into gigabytes (an alias bomb), so the first alias
    is refused, before anything is built.
    """

    source = "spec"

    def compose_node(self, parent, index):
        if self.check_event(yaml.AliasEvent):
            event = self.peek_event()
            raise SpecError(
                "",
                f"{self.source}, line {event.start_mark.line + 1}: YAML aliases (*{event.anchor[:40]}) are not "
                "allowed in a spec (a few of them can expand to gigabytes); write the value out where it is used",
            )
        return super().compose_node(parent, index)


_SpecLoader.add_implicit_resolver("tag:yaml.org,2002:float", _FLOAT_1_2, list("-+0123456789."))


def read_yaml(text: str, source: str = "spec") -> Any:
    """Plain data from YAML text: no aliases, no duplicate keys, mapping keys kept as written.

    ``yes:`` stays the string ``'yes'`` (PyYAML would make it ``True``), so a rule on names
    can name it.
    """
    loader = _SpecLoader(text)
    loader.source = source
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        _check_keys(node, (), source)
        return loader.construct_document(node)
    except yaml.YAMLError as exc:
        where = getattr(exc, "problem_mark", None)
        at = f" at line {where.line + 1}, column {where.column + 1}" if where is not None else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise SpecError("", f"{source}: malformed YAML{at}: {problem[:200]}") from None
    except RecursionError:
        raise SpecError("", f"{source}: nested too deeply to be a spec") from None
    finally:
        loader.dispose()


def _check_keys(node: yaml.Node, path: tuple, source: str) -> None:
    """Refuse a key set twice in one mapping (naming both lines); make plain scalar keys strings."""
    if isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            _check_keys(item, (*path, str(i)), source)
    elif isinstance(node, yaml.MappingNode):
        lines: dict[str, int] = {}
        for key, value in node.value:
            if isinstance(key, yaml.ScalarNode):
                if key.style is None and key.tag != _MERGE_TAG:
                    key.tag = _STR_TAG
                line = key.start_mark.line + 1
                if key.value in lines:
                    raise SpecError(
                        ".".join((*path, key.value[:40])),
                        f"set twice in {source}, at lines {lines[key.value]} and {line}; keep one",
                    )
                lines[key.value] = line
                _check_keys(value, (*path, key.value), source)
            else:
                _check_keys(value, path, source)


def _spec_default(name: str) -> Any:
    """The default of ``train.<name>`` (or of the top-level ``seed``): defaults live in the spec only."""
    if name == "seed":
        return Spec.model_fields["seed"].default
    value = TrainSpec.model_fields[name].default
    return value.value if isinstance(value, Param) else value


@dataclass(frozen=True)
class TrainConfig:
    """One trial's concrete training values: ``spec.TrainSpec`` with every searched value drawn.

    Fields carry the spec's names and defaults (``TrainSpec.concrete`` fills them by name).
    """

    optimizer: str = _spec_default("optimizer")  # a name in registry.OPTIMIZERS
    lr: float = _spec_default("lr")
    weight_decay: float = _spec_default("weight_decay")
    epochs: int = _spec_default("epochs")  # per phase (progressive: per column)
    batch_size: int = _spec_default("batch_size")
    weighting: str = _spec_default("weighting")  # a name in registry.WEIGHTINGS
    momentum: float = _spec_default("momentum")  # SGD only
    gradnorm_alpha: float = _spec_default("gradnorm_alpha")
    dwa_temperature: float = _spec_default("dwa_temperature")
    encoder_lr_mult: float = _spec_default("encoder_lr_mult")  # the stages' lr over the heads'
    patience: int | None = _spec_default("patience")  # stop a phase after this many epochs without a better score
    threads: int = _spec_default("threads")
    device: str = _spec_default("device")  # "auto" (cuda when available) | "cpu" | "cuda"
    precision: str = _spec_default("precision")  # "fp32" | "bf16" | "fp16"
    lr_schedule: str = _spec_default("lr_schedule")  # "constant" | "cosine" | "step" | "poly"
    warmup_epochs: float = _spec_default("warmup_epochs")
    lr_step_epochs: int | None = _spec_default("lr_step_epochs")
    lr_gamma: float | None = _spec_default("lr_gamma")
    lr_power: float | None = _spec_default("lr_power")
    grad_clip: float | None = _spec_default("grad_clip")  # None: no clipping
    channels_last: bool = _spec_default("channels_last")
    eval_every: int | None = _spec_default("eval_every")  # optimizer steps; None: at epoch ends only
    seed: int = _spec_default("seed")

    def __post_init__(self):
        for name in ("epochs", "batch_size", "threads"):
            if getattr(self, name) < 1:
                raise ValueError(f"train.{name} must be >= 1, got {getattr(self, name)!r}")
        for name in ("precision", "lr_schedule"):  # the spec checks these; a TrainConfig made in code is checked here
            allowed = TrainSpec.model_fields[name].annotation.__args__
            if getattr(self, name) not in allowed:
                raise ValueError(f"train.{name} must be one of {', '.join(allowed)}, got {getattr(self, name)!r}")
        if not 0 <= self.warmup_epochs < self.epochs:
            raise ValueError(f"train.warmup_epochs must be >= 0 and < train.epochs ({self.epochs}), got {self.warmup_epochs!r}")
