"""The plain training loop: one trial's model, data and hyper-parameters in, metrics out.

No Ray here: ``trial.py`` wraps ``fit`` and forwards each ``EpochReport``. The loop walks
the model's phases (one for most families, one per column for progressive networks). In
a phase only that phase's parameters train; the rest are frozen (``requires_grad`` off,
the modules a phase names as frozen run in eval mode, so their BatchNorm statistics stay).

Selection (``selection.py``): after every epoch the phase is scored on what the trial is
ranked by, its validation Δm against the single-task baseline when the caller knows it;
independent single-task columns are each kept at their own best epoch. At the end of a
phase the model goes back to the selected weights, so each progressive column keeps its
own best weights and later columns train on top of them. Test metrics are computed once,
at the selected weights.
"""

from __future__ import annotations

import random
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Collection, Iterator, Mapping, Sequence

import numpy as np
import torch
from torch import Tensor, nn

from ..arch._base import MultiTaskModel, Phase
from ..data._base import Dataset, Split
from ..data.folder import FolderSplit
from ..errors import DataError, ShareSearchError, SpecError
from ..spec.model import TrainConfig
from ..spec.registry import create_optimizer
from .selection import EpochSelection
from .tasks import SplitScores, Task
from .weighting import Weighting, make_weighting


class TrainingDiverged(ShareSearchError):
    """A training loss became NaN or infinite; the trial fails with this message."""

    def __init__(self, epoch: int, phase: str, values: Mapping[str, float]):
        self.epoch, self.phase, self.values = epoch, phase, dict(values)
        bad = ", ".join(f"{name} = {value}" for name, value in values.items())
        super().__init__(
            f"training diverged in epoch {epoch} (phase {phase!r}): non-finite loss for {bad}; "
            "a lower learning rate usually helps"
        )


@dataclass
class EpochReport:
    """What ``fit`` tells its caller after each epoch (a trial forwards it to Ray Tune).

    ``is_best`` means the epoch beat every earlier epoch of its phase (for independent
    columns: for at least one task); the model then holds weights ``fit`` will return unless
    a later epoch does better.
    """

    epoch: int  # 1-based, counted over all phases
    phase: str
    train_loss: float  # unweighted sum over the phase's tasks of their mean batch losses
    val_loss: float  # unweighted sum over the phase's tasks of their validation losses
    val: dict[str, dict[str, float]]  # task -> metric -> value, every task
    is_best: bool
    model: nn.Module
    phase_epoch: int = 0  # 1-based, counted within the phase
    last_phase: bool = True  # every earlier phase (progressive: column) has finished training


@dataclass
class FitResult:
    """One trial's outcome; everything but ``state_dict`` is plain data."""

    best_epoch: int  # the latest selected epoch (of the last phase; of any column when columns are separate)
    val: dict[str, dict[str, float]]  # at the selected weights
    test: dict[str, dict[str, float]]  # at the selected weights
    history: list[dict[str, Any]]  # per epoch: epoch, phase, train_loss, val_loss, is_best, "<task>.<metric>"
    state_dict: dict[str, Tensor]  # the selected weights, on the CPU
    wall_time_s: float
    weighting_state: dict[str, dict]  # phase -> Weighting.state() at that phase's selected epoch
    best_epochs: dict[str, int] = field(default_factory=dict)  # task -> the epoch whose weights serve it


@dataclass(frozen=True)
class _Tensors:
    """A split held whole on the training device: the fast path, batches are index lookups."""

    x: Tensor
    y: dict[str, Tensor]  # by task name

    def batches(self, size: int, shuffle: torch.Generator | None, names: Sequence[str]) -> Iterator[tuple[Tensor, dict[str, Tensor]]]:
        """``(inputs, {task: targets})`` of ``size`` rows, in an order drawn from ``shuffle`` (None: in order)."""
        if shuffle is None:
            for start in range(0, len(self.x), size):
                yield self.x[start : start + size], {n: self.y[n][start : start + size] for n in names}
            return
        order = torch.randperm(len(self.x), generator=shuffle).to(self.x.device)
        for start in range(0, len(order), size):
            rows = order[start : start + size]
            yield self.x[rows], {n: self.y[n][rows] for n in names}


class _Streamed:
    """A split read from disk as it trains: its DataLoader, made once per fit (so persistent
    workers live across epochs), shuffles with its own generator from the trial's seed."""

    def __init__(self, split: FolderSplit, tasks: Sequence[Task], device: torch.device, batch_size: int, seed: int, shuffle: bool, persistent: bool):
        self.split, self.device = split, device
        self.label = {t.name: t.label for t in tasks}
        self.pin = device.type == "cuda"
        self.loader = split.loader(batch_size, seed, shuffle=shuffle, pin_memory=self.pin, persistent=persistent)

    def __len__(self) -> int:
        return len(self.split)

    def batches(self, size: int, shuffle: torch.Generator | None, names: Sequence[str]) -> Iterator[tuple[Tensor, dict[str, Tensor]]]:
        """As ``_Tensors.batches``; the loader's batch size and order apply (``size``, ``shuffle`` unused)."""
        for x, y in self.loader:
            yield x.to(self.device, non_blocking=self.pin), {n: y[self.label[n]].to(self.device, non_blocking=self.pin) for n in names}


def resolve_device(name: str) -> torch.device:
    """``auto`` picks CUDA when PyTorch sees a GPU; ``cuda`` is whichever GPU the process was given."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise ShareSearchError("train.device: 'cuda' was asked for, but PyTorch sees no CUDA device (use 'auto' or 'cpu')")
    if name not in ("cpu", "cuda"):
        raise ValueError(f"train.device must be one of auto, cpu, cuda, got {name!r}")
    return torch.device(name)


def fit(
    model: MultiTaskModel,
    data: Dataset,
    tasks: Sequence[Task],
    config: TrainConfig = TrainConfig(),
    report: Callable[[EpochReport], None] | None = None,
    baseline: Mapping[str, Mapping[str, float]] | None = None,
) -> FitResult:
    """Train ``model`` phase by phase and return its metrics at the weights chosen on validation.

    ``baseline`` (task -> metric -> the single-task baseline's validation value, for the metrics Δm counts), when known,
    makes the selection score the trial's Δm (``selection.py``). Global random state is
    reset from ``config.seed`` first, so the same inputs give the same result on the CPU
    however many fits ran before in this process. ``model`` is left holding the selected
    weights.
    """
    started = time.perf_counter()
    random.seed(config.seed)
    np.random.seed(config.seed)
    torch.manual_seed(config.seed)
    torch.set_num_threads(config.threads)
    device = resolve_device(config.device)
    model.to(device)
    by_name = {t.name: t for t in tasks}
    splits = {name: _split_on(data, name, tasks, device, config) for name in ("train", "val", "test")}
    shuffle = torch.Generator().manual_seed(config.seed)

    history: list[dict[str, Any]] = []
    best_epochs: dict[str, int] = {}
    weighting_state: dict[str, dict] = {}
    trainable = {p: p.requires_grad for p in model.parameters()}
    user_frozen = _user_frozen(model)
    columns = model.separate_columns()
    epoch = 0
    try:
        phases = model_phases(model, config)
        for index, phase in enumerate(phases):
            begin_phase = getattr(model, "begin_phase", None)
            if begin_phase is not None:
                begin_phase(index)
            params = _train_only(model, phase)
            shared_ids = {id(p) for p in model.shared_parameters()}
            shared = [p for p in params if id(p) in shared_ids]
            phase_tasks = [by_name[name] for name in phase.tasks]
            weighting = make_weighting(config.weighting, phase.tasks, config).to(device)
            optimizer = _make_optimizer(phase, weighting, config)
            frozen = [*phase.frozen, *user_frozen]

            selection = EpochSelection(model, phase_tasks, baseline, columns)
            for phase_epoch in range(1, config.epochs + 1):
                epoch += 1
                train_losses = _train_epoch(
                    model, splits["train"], phase_tasks, weighting, optimizer, params, shared, frozen, config, shuffle, epoch, phase.name
                )
                weighting.end_epoch(train_losses)
                val_losses, val_metrics = _evaluate(model, splits["val"], tasks, config.batch_size)
                is_best = selection.update(model, epoch, val_metrics)
                if is_best:
                    weighting_state[phase.name] = weighting.state()
                train_loss = sum(train_losses.values())
                val_loss = sum(val_losses[t] for t in phase.tasks)
                history.append(
                    {"epoch": epoch, "phase": phase.name, "train_loss": train_loss, "val_loss": val_loss, "is_best": is_best}
                    | {f"{task}.{metric}": value for task, values in val_metrics.items() for metric, value in values.items()}
                )
                if report is not None:
                    last = index == len(phases) - 1
                    report(EpochReport(epoch, phase.name, train_loss, val_loss, val_metrics, is_best, model, phase_epoch, last))
                if config.patience is not None and selection.since_best >= config.patience:
                    break
            selection.restore(model)
            best_epochs.update(selection.epochs)
    finally:
        for p, flag in trainable.items():
            p.requires_grad_(flag)

    _, val = _evaluate(model, splits["val"], tasks, config.batch_size)
    _, test = _evaluate(model, splits["test"], tasks, config.batch_size)
    return FitResult(
        best_epoch=max(best_epochs.values(), default=0),
        val=val,
        test=test,
        history=history,
        state_dict={k: v.detach().cpu().clone() for k, v in model.state_dict().items()},
        wall_time_s=time.perf_counter() - started,
        weighting_state=weighting_state,
        best_epochs=best_epochs,
    )


def _split_on(data: Dataset, name: str, tasks: Sequence[Task], device: torch.device, config: TrainConfig) -> _Tensors | _Streamed:
    """The batching seam: an in-memory split goes whole onto the device, a streamed one gets its DataLoader."""
    split = data.split(name)
    if isinstance(split, FolderSplit):
        _check_labels(data.name, split.labels, tasks)
        return _Streamed(split, tasks, device, config.batch_size, config.seed, shuffle=name == "train", persistent=name != "test")
    return _to_tensors(data, name, tasks, device)


def _check_labels(dataset: str, labels: Collection[str], tasks: Sequence[Task]) -> None:
    for t in tasks:
        if t.label not in labels:
            raise DataError(
                f"task {t.name!r} reads label {t.label!r}, which dataset {dataset!r} does not have "
                f"(labels: {', '.join(labels)})"
            )


def _to_tensors(data: Dataset, split_name: str, tasks: Sequence[Task], device: torch.device) -> _Tensors:
    """A split on the training device; the whole split fits in memory by design."""
    split: Split = data.split(split_name)
    _check_labels(data.name, split.y, tasks)
    x = torch.as_tensor(split.x, dtype=torch.float32, device=device)
    y = {t.name: torch.as_tensor(split.y[t.label], dtype=torch.float32, device=device) for t in tasks}
    return _Tensors(x, y)


def model_phases(model: nn.Module, config: TrainConfig) -> list[Phase]:
    """The model's phases, its encoder at lr × ``train.encoder_lr_mult``; a model whose
    ``phases()`` takes no multiplier is asked without one unless the spec sets it."""
    if config.encoder_lr_mult == 1.0:
        return model.phases()
    try:
        return model.phases(encoder_lr_mult=config.encoder_lr_mult)
    except TypeError as exc:
        if "encoder_lr_mult" not in str(exc):
            raise
        raise SpecError("train.encoder_lr_mult", f"{type(model).__name__}.phases() takes no encoder_lr_mult, so only 1.0 fits it, got {config.encoder_lr_mult}") from None


def _train_only(model: nn.Module, phase: Phase) -> list[nn.Parameter]:
    """Make exactly the phase's parameters trainable and return them."""
    params = [p for group, _ in phase.param_groups for p in group]
    ids = {id(p) for p in params}
    for p in model.parameters():
        p.requires_grad_(id(p) in ids)
    return params


def _user_frozen(model: nn.Module) -> list[nn.Module]:
    """Modules the user froze before training (every parameter of their own ``requires_grad=False``,
    e.g. a pretrained stage): they stay in eval mode too. A module without parameters of its
    own (a BatchNorm without affine weights) is not frozen by this."""
    return [m for m in model.modules() if (own := list(m.parameters(recurse=False))) and not any(p.requires_grad for p in own)]


def _make_optimizer(phase: Phase, weighting: Weighting, config: TrainConfig) -> torch.optim.Optimizer:
    undecayed = {id(p) for p in phase.no_weight_decay}
    groups = []
    for group, multiplier in phase.param_groups:
        for decay in (True, False):  # the phase's mixing weights (cross-stitch α) are not decayed towards zero
            params = [p for p in group if (id(p) not in undecayed) == decay]
            if params:
                groups.append({"params": params, "lr": config.lr * multiplier} | ({} if decay else {"weight_decay": 0.0}))
    extra = list(weighting.parameters())
    if extra:  # learned loss weights are not decayed towards zero
        groups.append({"params": extra, "weight_decay": 0.0})
    return create_optimizer(config.optimizer, groups, config)


def _train_epoch(
    model: nn.Module,
    split: _Tensors | _Streamed,
    tasks: Sequence[Task],
    weighting: Weighting,
    optimizer: torch.optim.Optimizer,
    params: list[nn.Parameter],
    shared: list[nn.Parameter],
    frozen: Sequence[nn.Module],
    config: TrainConfig,
    shuffle: torch.Generator,
    epoch: int,
    phase: str,
) -> dict[str, float]:
    """One pass over the shuffled training split; returns each task's mean batch loss."""
    model.train()
    for m in frozen:  # frozen modules keep their BatchNorm statistics
        m.eval()
    sums = dict.fromkeys((t.name for t in tasks), 0.0)
    n_batches = 0
    for x, y in split.batches(config.batch_size, shuffle, list(sums)):
        n_batches += 1
        outputs = model(x)
        losses = {t.name: t.loss(outputs[t.name], y[t.name]) for t in tasks}
        values = dict(zip(losses, torch.stack(list(losses.values())).tolist()))
        _check_finite(values, epoch, phase)
        optimizer.zero_grad(set_to_none=True)
        total = weighting.backward(losses, params, shared)
        _check_finite({f"weighted total ({weighting.name})": total.item()}, epoch, phase)
        optimizer.step()
        weighting.after_step()
        for name, value in values.items():
            sums[name] += value
    return {name: value / n_batches for name, value in sums.items()}


def _check_finite(values: Mapping[str, float], epoch: int, phase: str) -> None:
    bad = {name: value for name, value in values.items() if not np.isfinite(value)}
    if bad:
        raise TrainingDiverged(epoch, phase, bad)


@torch.no_grad()
def _evaluate(
    model: nn.Module, split: _Tensors | _Streamed, tasks: Sequence[Task], batch_size: int
) -> tuple[dict[str, float], dict[str, dict[str, float]]]:
    """Per-task loss and metrics over a whole split, predicted in eval mode in batches.

    A per-sample task's outputs are gathered and scored at once; a dense task's are summed
    batch by batch (``SplitScores``), its outputs never held for the whole split."""
    model.eval()
    names = [t.name for t in tasks]
    whole = [t for t in tasks if not t.dense]
    scores = {t.name: SplitScores(t) for t in tasks if t.dense}
    chunks, parts = [], []
    for x, y in split.batches(batch_size, None, names):
        out = model(x)
        chunks.append({t.name: out[t.name] for t in whole})
        parts.append({t.name: y[t.name] for t in whole})
        for name, score in scores.items():
            score.update(out[name], y[name])
    outputs = {t.name: torch.cat([c[t.name] for c in chunks]) for t in whole}
    targets = split.y if isinstance(split, _Tensors) else {t.name: torch.cat([p[t.name] for p in parts]) for t in whole}
    losses = {t.name: t.loss(outputs[t.name], targets[t.name]).item() for t in whole}
    metrics = {t.name: t.evaluate(outputs[t.name].cpu().numpy(), targets[t.name].cpu().numpy()) for t in whole}
    for name, score in scores.items():
        losses[name], metrics[name] = score.result()
    return {n: losses[n] for n in names}, {n: metrics[n] for n in names}


def evaluate(model: nn.Module, split: Split | FolderSplit, tasks: Sequence[Task], batch_size: int = 256) -> dict[str, dict[str, float]]:
    """Every task's metrics on one split (used by export for the selected architectures)."""
    device = next(model.parameters()).device
    if isinstance(split, FolderSplit):
        return _evaluate(model, _Streamed(split, tasks, device, batch_size, seed=0, shuffle=False, persistent=False), tasks, batch_size)[1]
    x = torch.as_tensor(split.x, dtype=torch.float32, device=device)
    y = {t.name: torch.as_tensor(split.y[t.label], dtype=torch.float32, device=device) for t in tasks}
    return _evaluate(model, _Tensors(x, y), tasks, batch_size)[1]


def first_inputs(split: Split | FolderSplit, n: int) -> Tensor:
    """The first ``n`` inputs of a split (an export's example), read from disk for a streamed one."""
    if isinstance(split, FolderSplit):
        samples = split.samples()
        return torch.stack([samples[i][0] for i in range(min(n, len(samples)))])
    return torch.as_tensor(split.x[:n])
