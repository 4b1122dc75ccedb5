"""Registries: one small class, and the ones share-search looks names up in.

A ``Registry`` maps a name to an object: a sharing family (its networks, and under the
same name its search space), a backbone's stage builder, a task head, a loss weighting,
an optimizer, a metric, an Optuna sampler factory. Each kind has the same three
functions: ``register_<kind>(name)`` (a decorator; a name taken twice is an error),
``list_<kinds>()`` (sorted names) and ``create_<kind>(name, ...)`` or ``get_<kind>(name)``.

Built-ins are entered as ``"module:attr"`` references and imported on first use, so the
spec can check ``weighting: dwa`` or ``families: {tree: ...}`` without importing torch.
A reference may name light attributes beside the object (a family's ``Options``, held in
a torch-free module) that are read without importing the object.

What a user registers lives in the process that registered it. Ray's workers import
share-search afresh, so a spec lists the modules that register its additions under
``plugins:``; the driver and every worker import them (``user_code.import_plugins``).
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from typing import Any, Callable, Generic, Iterator, Mapping, Sequence, TypeVar

T = TypeVar("T")


class UnknownNameError(KeyError, ValueError):
    """A name no registry entry has; a ``KeyError`` for lookups, a ``ValueError`` for checks."""

    def __str__(self) -> str:
        return str(self.args[0])


@dataclass(frozen=True)
class Ref:
    """A built-in entry by import path, imported when first used."""

    target: str  # "module:attr"
    light: Mapping[str, str] = field(default_factory=dict)  # attribute -> "module:attr", read without importing target


def resolve(path: str) -> Any:
    module, _, attr = path.partition(":")
    return getattr(importlib.import_module(module), attr)


class Registry(Mapping[str, T], Generic[T]):
    """Name -> object. Iteration keeps registration order (built-ins first); ``names()`` sorts."""

    def __init__(self, kind: str, builtins: Mapping[str, str | Ref] = ()):
        self.kind = kind
        self._entries: dict[str, Any] = {}
        for name, ref in dict(builtins).items():
            self._add(name, ref if isinstance(ref, Ref) else Ref(ref))

    def _add(self, name: str, obj: Any) -> None:
        if not isinstance(name, str) or not name:
            raise ValueError(f"a {self.kind} name is a non-empty string, got {name!r}")
        if name in self._entries:
            raise ValueError(f"{self.kind} {name!r} is already registered")
        self._entries[name] = obj

    def register(self, name: str, obj: Any = None):
        """Add ``obj`` under ``name``, or, without ``obj``, return a decorator that does."""
        if obj is not None:
            self._add(name, obj)
            return obj

        def decorator(o):
            self._add(name, o)
            return o

        return decorator

    def unknown(self, name: Any) -> UnknownNameError:
        return UnknownNameError(f"unknown {self.kind} {name!r} (known: {', '.join(self._entries)})")

    def __getitem__(self, name: str) -> T:
        try:
            entry = self._entries[name]
        except (KeyError, TypeError):
            raise self.unknown(name) from None
        if isinstance(entry, Ref):
            entry = self._entries[name] = resolve(entry.target)
        return entry

    def attr(self, name: str, key: str) -> Any:
        """``self[name].<key>``, read from the reference's light attributes when it has them."""
        entry = self._entries.get(name)
        if isinstance(entry, Ref) and key in entry.light:
            return resolve(entry.light[key])
        return getattr(self[name], key)

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(list(self._entries))

    def __len__(self) -> int:
        return len(self._entries)

    def names(self) -> list[str]:
        return sorted(self._entries)

    def unregister(self, name: str) -> None:
        """Remove an entry (tests that register something clean up with this)."""
        self._entries.pop(name, None)


# --------------------------------------------------------------------------- the registries
@dataclass(frozen=True)
class Metric:
    """A metric with its direction; ``fn(y_true, output, task) -> float`` on masked numpy arrays.

    ``accumulate`` (a per-pixel metric's): ``factory(task)`` of an object whose ``update(output,
    target)`` takes each batch's device tensors and whose ``compute()`` returns ``{metric: value}``
    for the whole split, or that factory's ``"module:attr"``; the metrics of one task that name
    the same factory share one. A dense task's metrics without one get the whole split's arrays."""

    name: str
    higher_is_better: bool
    task_types: tuple[str, ...]
    fn: Callable[[Any, Any, "Any"], float]
    accumulate: Any = None


def _family(module: str, cls: str, options: str) -> Ref:
    return Ref(f"share_search.arch.{module}:{cls}", {"Options": f"share_search.spec.family_options:{options}"})


FAMILIES: Registry = Registry("family", {
    "tree": _family("tree", "FAMILY", "TreeOptions"),
    "cross_stitch": _family("cross_stitch", "FAMILY", "CrossStitchOptions"),
    "progressive": _family("progressive", "FAMILY", "ProgressiveOptions"),
})
# a family's search space (Optuna sampling, enumeration), by the family's name
FAMILY_SPACES: Registry = Registry("family space", {n: f"share_search.space.{n}:SPACE" for n in FAMILIES})
BACKBONES: Registry = Registry("backbone", {
    **{n: f"share_search.arch.backbones:{n}" for n in ("mlp", "convnet", "resnet")},
    **{n: f"share_search.arch.encoders:{n}" for n in ("resnet18", "resnet34", "resnet50", "timm")},
})
HEADS: Registry = Registry("head", {n: f"share_search.arch.heads:{n}" for n in ("linear", "deeplab", "fcn")})
WEIGHTINGS: Registry = Registry("weighting", {
    "equal": "share_search.train.weighting:Equal",
    "uncertainty": "share_search.train.weighting:Uncertainty",
    "dwa": "share_search.train.weighting:DWA",
    "gradnorm": "share_search.train.weighting:GradNorm",
    "pcgrad": "share_search.train.weighting:PCGrad",
})
METRICS: Registry = Registry("metric", {n: f"share_search.train.metrics:{n}" for n in (
    "accuracy", "balanced_accuracy", "f1", "auc", "mae", "rmse", "r2",  # per sample
    "miou", "pixel_accuracy", "abs_err", "rel_err", "mean_angle", "median_angle",  # per pixel
    "within_11_25", "within_22_5", "within_30", "iou", "f_score",
)})
SAMPLERS: Registry = Registry("sampler", {n: f"share_search.space.samplers:{n}" for n in ("tpe", "random", "nsga2", "grid")})
OPTIMIZERS: Registry = Registry("optimizer", {n: f"share_search.train.optimizers:{n}" for n in ("adam", "sgd")})
REGISTRIES: dict[str, Registry] = {r.kind: r for r in (FAMILIES, FAMILY_SPACES, BACKBONES, HEADS, WEIGHTINGS, OPTIMIZERS, METRICS, SAMPLERS)}


def _named(name: str, cls: type, registry: Registry) -> None:
    """Give a registered class the name it was registered under (families and weightings read ``cls.name``)."""
    own = getattr(cls, "name", "")
    if own and own != name:
        raise ValueError(f"a {registry.kind} registered as {name!r} must have name {name!r} or none, but {cls.__name__}.name is {own!r}")
    cls.name = name


# families
def _add_family(name: str, family) -> None:
    """A family's networks, and its space too when the same object samples (``sample``)."""
    if callable(getattr(family, "sample", None)):
        FAMILY_SPACES.register(name, family)
    FAMILIES.register(name, family)


def register_family(name):
    """Class decorator: add a ``Family`` subclass (its instance) under ``name``.

    A class that is also a ``space.FamilySpace`` (it defines ``sample``) registers its
    search space with it; otherwise register one with ``register_family_space``.
    ``register_family(family)`` (an instance) registers it under ``family.name``."""
    if not isinstance(name, str):
        _add_family(name.name, name)
        return name

    def decorator(cls):
        _named(name, cls, FAMILIES)
        _add_family(name, cls())
        return cls

    return decorator


def register_family_space(name: str):
    """Class decorator: add a ``space.FamilySpace`` subclass (its instance) as the space of family ``name``."""
    def decorator(cls):
        _named(name, cls, FAMILY_SPACES)
        FAMILY_SPACES.register(name, cls())
        return cls

    return decorator


def list_families() -> list[str]:
    return FAMILIES.names()


def get_family(name: str):
    return FAMILIES[name]


def list_family_spaces() -> list[str]:
    return FAMILY_SPACES.names()


def get_family_space(name: str):
    return FAMILY_SPACES[name]


# backbones
def register_backbone(name: str):
    """Decorator: add a stage builder ``fn(input_shape, **options) -> [nn.Module, ...]``."""
    return BACKBONES.register(name)


def list_backbones() -> list[str]:
    return BACKBONES.names()


# heads
def register_head(name: str):
    """Decorator: add ``fn(in_shape, n_outputs, input_shape, **options) -> nn.Module``, a task's head
    on the last stage's output (``in_shape``, per sample) of a network whose input is ``input_shape``.
    Give ``fn`` an attribute ``dense = True`` (per-pixel output) or ``False`` so the spec can refuse it
    on the other kind of task."""
    return HEADS.register(name)


def list_heads() -> list[str]:
    return HEADS.names()


def create_head(name: str, in_shape, n_outputs: int, input_shape, **options):
    return HEADS[name](tuple(in_shape), n_outputs, tuple(input_shape), **options)


# weightings
def register_weighting(name):
    """Class decorator: add a ``Weighting`` subclass under ``name``.

    ``register_weighting(cls)`` (no name) registers under ``cls.name``."""
    if isinstance(name, type):
        cls = name
        WEIGHTINGS.register(cls.name, cls)
        return cls

    def decorator(cls):
        _named(name, cls, WEIGHTINGS)
        return WEIGHTINGS.register(name, cls)

    return decorator


def list_weightings() -> list[str]:
    return WEIGHTINGS.names()


def create_weighting(name: str, tasks: Sequence[str], config):
    """A fresh weighting for ``tasks`` with ``config`` (a ``train.loop.TrainConfig``)."""
    return WEIGHTINGS[name](tasks, config)


# optimizers
def register_optimizer(name: str):
    """Decorator: add ``factory(param_groups, config) -> torch.optim.Optimizer`` (``config``: a ``TrainConfig``)."""
    return OPTIMIZERS.register(name)


def list_optimizers() -> list[str]:
    return OPTIMIZERS.names()


def create_optimizer(name: str, param_groups, config):
    return OPTIMIZERS[name](param_groups, config)


# metrics
def register_metric(name: str, *, higher_is_better: bool, task_types: Sequence[str], accumulate: Any = None):
    """Decorator: add ``fn(y_true, output, task) -> float`` (masked numpy arrays) as a metric;
    ``accumulate``: see ``Metric`` (per-pixel metrics summed batch by batch)."""
    def decorator(fn):
        METRICS.register(name, Metric(name, higher_is_better, tuple(task_types), fn, accumulate))
        return fn

    return decorator


def list_metrics() -> list[str]:
    return METRICS.names()


def get_metric(name: str):
    return METRICS[name]


# samplers
def register_sampler(name: str):
    """Decorator: add ``factory(seed, trials) -> optuna.samplers.BaseSampler``."""
    return SAMPLERS.register(name)


def list_samplers() -> list[str]:
    return SAMPLERS.names()


def create_sampler(name: str, seed: int, trials: int):
    return SAMPLERS[name](seed=seed, trials=trials)
