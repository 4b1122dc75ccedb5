"""One trial as every reader sees it: ``TrialRecord``, read from and written to the study.

The engine writes a trial's outcome as Optuna user attributes (``to_user_attrs``); the
leaderboard, report, dashboard and export read it back (``from_frozen_trial``), so an
attribute's name and meaning live here only. Trials recorded before an attribute existed
read back with that field empty. No Ray and no torch: a run folder is read without them.

The Δm baseline rule is here too (``baseline_of``), so the search and the leaderboard
cannot compare against different trials.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping, Protocol, Sequence

from ..spec.roles import ROLE_HARD_SHARING, ROLE_SEARCHED, ROLE_SINGLE_TASK  # noqa: F401 (re-exported to readers)

FAIL_ORIGINS = ("user", "internal")  # user code (backbone, data, a NaN loss) or share-search itself
INTERRUPTED = "interrupted: the driver stopped before the trial finished"  # the reason of a trial a stopped driver left
RACE = "race"  # user attribute of a confirmation-race trial: whose seeds it holds, its round, the race's setup
DUPLICATE_OF = "duplicate_of"  # user attribute of a sampled trial that re-proposed a trained one: that trial's number (it was not trained)


class TaskLike(Protocol):
    """What the record needs of a task: its name, primary metric and every metric, primary
    first (``Task``, ``TaskInfo``)."""

    name: str
    metric: str

    @property
    def metrics(self) -> Sequence[str]: ...


@dataclass(frozen=True)
class Plan:
    """What a trial trains: the architecture's recipe and the training values (seed included)."""

    arch: Mapping[str, Any] | None = None  # ArchConfig.to_dict()
    train: Mapping[str, Any] | None = None  # TrainConfig's fields

    @property
    def seed(self) -> int | None:
        return None if self.train is None else self.train.get("seed")

    @classmethod
    def from_dict(cls, plan: Mapping[str, Any]) -> "Plan":
        """From the engine's plan dict (``spaces.plan_to_dict``: arch, train, role)."""
        return cls(arch=plan.get("arch"), train=plan.get("train"))


@dataclass(frozen=True)
class Cost:
    params: int | None = None
    macs: int | None = None  # multiply-accumulates per sample
    time_s: float | None = None  # wall time of the trial


@dataclass(frozen=True)
class Failure:
    """Why a trial did not complete (a FAIL's error, or why a PRUNED trial was stopped)."""

    reason: str
    traceback: str | None = None
    origin: str | None = None  # one of FAIL_ORIGINS; None on trials recorded before it was


SEED_MODULUS = 2**32  # the samplers and numpy take 32-bit seeds


def seed_of_repeat(seed: int, repeat: int) -> int:
    """The training seed of an architecture's ``repeat``-th run (``search.repeats``): the
    spec's seed for the first, so ``repeats: 1`` trains exactly what it always did."""
    return (int(seed) + repeat) % SEED_MODULUS


@dataclass(frozen=True)
class SeedResult:
    """One seed of an architecture: one Ray trial's outcome (``search.repeats``)."""

    repeat: int  # 0 .. repeats-1; the pairing key: repeat r of every trial has the same seed
    seed: int | None
    state: str  # COMPLETE, PRUNED or FAIL
    val: Mapping[str, Mapping[str, float | None]] | None = None
    delta_m: float | None = None  # paired: against the baseline's seed of the same repeat
    best_epoch: int | None = None
    best_epochs: Mapping[str, int] | None = None
    time_s: float | None = None
    started_at: float | None = None  # wall clock (Unix time) when its Ray trial started training
    ended_at: float | None = None
    node: str | None = None
    checkpoint: str | None = None
    fail_reason: str | None = None
    params: int | None = None
    macs: int | None = None
    history: Sequence[Mapping[str, Any]] | None = None  # kept per seed: a resumed run may keep the first seed's
    details: Mapping[str, Any] | None = None

    def value(self, task: str, metric: str) -> float:
        value = ((self.val or {}).get(task) or {}).get(metric)
        return math.nan if value is None else float(value)

    def to_dict(self) -> dict[str, Any]:
        return json_safe({k: v for k, v in self.__dict__.items() if v is not None})

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "SeedResult":
        known = {k: data[k] for k in cls.__dataclass_fields__ if k in data}
        return cls(**{"seed": None, "state": "COMPLETE", **known})


@dataclass(frozen=True)
class TrialRecord:
    number: int
    state: str  # Optuna's state name: COMPLETE, PRUNED, FAIL, RUNNING, WAITING
    role: str = ROLE_SEARCHED
    plan: Plan = field(default_factory=Plan)
    params: Mapping[str, Any] = field(default_factory=dict)  # what Optuna sampled (not written by to_user_attrs)
    family: str | None = None
    arch: str | None = None  # the architecture's one-line summary
    val: Mapping[str, Mapping[str, float | None]] | None = None  # task -> metric -> validation value
    delta_m: float | None = None  # as recorded when the trial ended
    cost: Cost = field(default_factory=Cost)
    best_epoch: int | None = None
    best_epochs: Mapping[str, int] | None = None  # task -> the epoch whose weights serve it
    history: Sequence[Mapping[str, Any]] | None = None  # one row per epoch
    details: Mapping[str, Any] | None = None  # what the network learned (α, lateral scales)
    node: str | None = None  # the Ray node that trained it
    checkpoint: str | None = None  # its best weights, relative to the run folder
    failure: Failure | None = None
    retry_of: int | None = None  # the interrupted trial this one repeats
    fixed_arch: Mapping[str, Any] | None = None  # a reference queued with its recipe (outside the space)
    seeds: Sequence[SeedResult] | None = None  # with search.repeats > 1: every seed; val and delta_m are their means
    race: Mapping[str, Any] | None = None  # a confirmation-race trial: {"of": the candidate's number, "round", setup...}
    duplicate_of: int | None = None  # a re-proposal told the result of this earlier trial, not trained (engine.searcher)

    @property
    def seed_results(self) -> list[SeedResult]:
        """Its seeds: those recorded, or (one seed, as every trial before ``search.repeats``)
        the trial itself as repeat 0, when it has metrics."""
        if self.seeds is not None:
            return list(self.seeds)
        if self.val is None:
            return []
        return [SeedResult(0, self.plan.seed, self.state, self.val, self.delta_m, self.best_epoch, self.best_epochs,
                           self.cost.time_s, node=self.node, checkpoint=self.checkpoint)]

    def completed_seeds(self) -> dict[int, SeedResult]:
        """Its COMPLETE seeds by repeat."""
        return {s.repeat: s for s in self.seed_results if s.state == "COMPLETE"}

    @property
    def architecture(self) -> Mapping[str, Any] | None:
        """The recipe it trained, or was queued with."""
        return self.plan.arch or self.fixed_arch

    @property
    def family_name(self) -> str:
        """Its family, from whatever records it: the result, the recipe, the sampled values."""
        return self.family or (self.architecture or {}).get("family") or self.params.get("family") or ""

    def metric(self, task: TaskLike) -> float:
        """The task's primary validation metric; NaN when not recorded."""
        return self.value(task.name, task.metric)

    def value(self, task: str, metric: str) -> float:
        """One validation metric of a task; NaN when not recorded."""
        value = ((self.val or {}).get(task) or {}).get(metric)
        return math.nan if value is None else float(value)

    # ----------------------------------------------------------------------- the study
    def to_user_attrs(self, tasks: Sequence[TaskLike] = ()) -> dict[str, Any]:
        """The user attributes that record this trial, JSON-safe; absent values are left
        out. With ``tasks``, each primary metric also as a flat ``val.<task>`` (sortable
        columns in optuna-dashboard's trial table)."""
        attrs = {
            "family": self.family,
            "arch": self.arch,
            "arch_json": None if self.plan.arch is None else json.dumps(self.plan.arch),
            "params": self.cost.params,
            "macs": self.cost.macs,
            "time_s": self.cost.time_s,
            "best_epoch": self.best_epoch,
            "best_epochs": self.best_epochs,
            "val": self.val,
            "delta_m": self.delta_m,
            "fail_reason": self.failure and self.failure.reason,
            "node": self.node,
            "history": self.history,
            "details": self.details,
        }
        if self.val:
            attrs.update({f"val.{t.name}": self.val[t.name].get(t.metric) for t in tasks if t.name in self.val})
        if self.seeds is not None:  # sortable spreads for optuna-dashboard's trial table
            attrs.update(self._spread_attrs(tasks))
        attrs.update({
            "role": None if self.role == ROLE_SEARCHED else self.role,
            "retry_of": self.retry_of,
            "fixed_arch": None if self.fixed_arch is None else json.dumps(self.fixed_arch, sort_keys=True),  # ArchConfig.to_json
            "train": self.plan.train,
            "fail_traceback": self.failure and self.failure.traceback,
            "fail_origin": self.failure and self.failure.origin,
            "checkpoint": self.checkpoint,
            "seeds": None if self.seeds is None else [seed.to_dict() for seed in self.seeds],
            DUPLICATE_OF: self.duplicate_of,
        })
        return {key: json_safe(value) for key, value in attrs.items() if value is not None}

    def _spread_attrs(self, tasks: Sequence[TaskLike]) -> dict[str, Any]:
        """``n_seeds`` (completed), and the standard error over them of Δm and of each primary metric."""
        from .uncertainty import mean_and_se

        done = list(self.completed_seeds().values())
        attrs: dict[str, Any] = {"n_seeds": len(done)}
        if done and all(s.delta_m is not None for s in done):
            attrs["delta_m.se"] = mean_and_se([s.delta_m for s in done]).se
        attrs.update({f"val.{t.name}.se": mean_and_se([s.value(t.name, t.metric) for s in done]).se for t in tasks if done})
        return attrs

    @classmethod
    def from_frozen_trial(cls, t) -> "TrialRecord":
        """A study's trial (``optuna.trial.FrozenTrial``) as a record."""
        a = t.user_attrs
        reason = a.get("fail_reason")
        return cls(
            number=t.number,
            state=t.state.name,
            role=a.get("role") or ROLE_SEARCHED,
            plan=Plan(arch=_json(a.get("arch_json")), train=a.get("train")),
            params=dict(t.params),
            family=a.get("family"),
            arch=a.get("arch"),
            val=a.get("val"),
            # a Δm stored as null was NaN (no metrics to compare); kept so it is written back
            delta_m=(math.nan if a["delta_m"] is None else a["delta_m"]) if "delta_m" in a else None,
            cost=Cost(a.get("params"), a.get("macs"), a.get("time_s")),
            best_epoch=a.get("best_epoch"),
            best_epochs=a.get("best_epochs"),
            history=a.get("history"),
            details=a.get("details"),
            node=a.get("node"),
            checkpoint=a.get("checkpoint"),
            failure=None if reason is None else Failure(reason, a.get("fail_traceback"), a.get("fail_origin")),
            retry_of=a.get("retry_of"),
            fixed_arch=_json(a.get("fixed_arch")),
            seeds=seeds_from_attr(a.get("seeds")),
            race=a.get(RACE) if isinstance(a.get(RACE), dict) else None,
            duplicate_of=a.get(DUPLICATE_OF) if isinstance(a.get(DUPLICATE_OF), int) else None,
        )


def seeds_from_attr(value: Any) -> list[SeedResult] | None:
    """The ``seeds`` user attribute back as results (None when absent or not a list of records)."""
    if not isinstance(value, list) or not all(isinstance(v, dict) and isinstance(v.get("repeat"), int) for v in value):
        return None
    return [SeedResult.from_dict(v) for v in value]


def _json(text: str | None) -> Any:
    return None if not text else json.loads(text)


def study_records(study, states: Sequence | None = None) -> list[TrialRecord]:
    """Every trial of ``study`` (those in ``states`` when given), in trial order, with the
    seeds the confirmation race trained folded into their architectures (``fold_race_seeds``).
    Re-proposals that were not trained (``duplicate_of``) are left out: each architecture is
    the trial that trained it, once, on the leaderboard, in the report and in exports."""
    records = (TrialRecord.from_frozen_trial(t) for t in study.get_trials(deepcopy=False, states=states))
    return fold_race_seeds([r for r in records if r.duplicate_of is None])


def seed_means(seeds: Sequence[SeedResult]) -> dict[str, dict[str, float]]:
    """Every validation metric's mean over ``seeds`` (task -> metric -> mean), the first seed's tasks and metrics."""
    from .uncertainty import mean_and_se

    first = (seeds[0].val or {}) if seeds else {}
    return {task: {m: mean_and_se([s.value(task, m) for s in seeds]).mean for m in metrics} for task, metrics in first.items()}


def seed_delta_m(seeds: Sequence[SeedResult]) -> float | None:
    """The mean of the seeds' paired Δm; None when a seed has none."""
    from .uncertainty import mean_and_se

    deltas = [s.delta_m for s in seeds]
    return None if any(d is None for d in deltas) else mean_and_se(deltas).mean


def fold_race_seeds(records: Sequence[TrialRecord]) -> list[TrialRecord]:
    """The records with each race trial's COMPLETE seeds added to the trial it raced for
    (``race.of``), so the leaderboard, export and report read one architecture's seeds in
    one record: its metrics and Δm become the means over all of them, its time their sum.

    A race trial holds copies of the seeds its candidate had before (``engine.race``), and a
    trial a stopped driver left keeps the seeds that finished: each repeat is taken once,
    the candidate's own first. The race trials stay in the list (the report draws the race
    from them) and are never listed as rows (``race`` set)."""
    extra: dict[int, dict[int, SeedResult]] = {}
    for r in records:
        if r.race is not None and isinstance(r.race.get("of"), int):
            for seed in r.seeds or ():
                if seed.state == "COMPLETE":
                    extra.setdefault(r.race["of"], {}).setdefault(seed.repeat, seed)
    return [_with_race_seeds(r, extra[r.number]) if r.race is None and r.state == "COMPLETE" and r.number in extra else r for r in records]


def _with_race_seeds(record: TrialRecord, race_seeds: Mapping[int, SeedResult]) -> TrialRecord:
    from dataclasses import replace

    own = record.completed_seeds()
    added = {r: s for r, s in race_seeds.items() if r not in own}
    if not added:
        return record
    seeds = [s for _, s in sorted({**own, **added}.items())]
    time_s = None if record.cost.time_s is None else record.cost.time_s + math.fsum(s.time_s or 0.0 for s in added.values())
    return replace(record, seeds=seeds, val=seed_means(seeds), delta_m=seed_delta_m(seeds), cost=Cost(record.cost.params, record.cost.macs, time_s))


# --------------------------------------------------------------------------- the Δm baseline
def baseline_of(records: Iterable[TrialRecord]) -> TrialRecord | None:
    """The trial Δm compares against: the COMPLETE single-task trial with the lowest number.

    A study normally holds one; more appear when a reference is run again (a retry after
    ``--resume``, repeats with other seeds). The lowest number is the first reference the
    search had, so every Δm recorded during the search and the leaderboard's use the same
    trial, and a later one cannot move the zero by being stronger or weaker.
    """
    done = [r for r in records if r.role == ROLE_SINGLE_TASK and r.state == "COMPLETE" and r.race is None]
    return min(done, key=lambda r: r.number, default=None)


def baseline_metrics(records: Iterable[TrialRecord], tasks: Sequence[TaskLike]) -> dict[str, dict[str, float]] | None:
    """The baseline's validation metrics, task -> metric -> value, every metric of each task
    (NaN where not recorded), so Δm has what either convention needs; None without a baseline."""
    base = baseline_of(records)
    return None if base is None else {t.name: {m: base.value(t.name, m) for m in t.metrics} for t in tasks}


def baselines_by_repeat(records: Iterable[TrialRecord], tasks: Sequence[TaskLike]) -> dict[int, dict[str, dict[str, float]]] | None:
    """The baseline's validation metrics per seed, repeat -> task -> metric -> value: what
    each seed of every trial is compared with (paired Δm); None without a baseline."""
    base = baseline_of(records)
    if base is None:
        return None
    return {r: {t.name: {m: seed.value(t.name, m) for m in t.metrics} for t in tasks} for r, seed in base.completed_seeds().items()}


# --------------------------------------------------------------------------- drawings
def stage_count(study_attrs: Mapping[str, Any], records: Iterable[TrialRecord]) -> int | None:
    """The backbone's stage count, which drawings of column families need: the study's
    ``n_stages`` attribute, else the stage count of the first tree among ``records`` (every
    study with single-task baselines holds one); None when neither tells."""
    if study_attrs.get("n_stages"):
        return int(study_attrs["n_stages"])
    for r in records:
        arch = r.architecture
        if arch and arch.get("family") == "tree":
            return len(arch["stages"])
    return None


def json_safe(value: Any) -> Any:
    """Values as JSON keeps them (non-finite floats become None), for user attributes."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    if value is None or isinstance(value, (str, int, bool)):
        return value
    return json.loads(json.dumps(value, default=str))
