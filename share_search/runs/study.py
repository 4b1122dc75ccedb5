"""The Optuna study as the run's database: open it, name its objectives, read it back.

Every trial of a run lives here (SQLite in the run folder by default, any SQLAlchemy URL
for clusters), so optuna-dashboard, the leaderboard and export all read one source.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any, Collection, Sequence
from urllib.parse import quote, unquote

import optuna
import pandas as pd
from optuna.trial import TrialState

from ..errors import RunError, SpecError
from ..train.problem import Problem
from .racing import race_order, race_standing
from .rank import delta_m_terms, leaderboard, metric_column
from .record import DUPLICATE_OF, INTERRUPTED, RACE, ROLE_SEARCHED, ROLE_SINGLE_TASK, TrialRecord, json_safe  # noqa: F401 (json_safe: the searcher and trial import it from here)
from ..spec.model import DELTA_M_CONVENTIONS, DELTA_M_PRIMARY, TRIAL_COLUMNS, Spec
from ..train.tasks import Task

SQLITE_TIMEOUT_S = 30  # a dashboard reading the file must never make a write fail
RETRY_OF = "retry_of"  # user attribute: the number of the interrupted trial this one repeats
SEEDS = "seeds"  # user attribute: each seed's outcome (search.repeats > 1), kept by a retry
STORAGE_ENV = "SHARE_SEARCH_STORAGE"  # the storage URL, when the spec names none (or keeps it masked)
MASK = "***"

_REFERENCE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
# query values that are secrets: ?password=, ?sslpassword=, ?passwd=, ?pwd=, ?secret=, ?token=
_SECRET_QUERY = re.compile(r"([?&;][^=&;#]*(?:pass|pwd|secret|token)[^=&;#]*=)([^&;#]*)", re.IGNORECASE)


def _password_span(url: str) -> tuple[int, int] | None:
    """Where the password of ``url``'s user part is. The user part ends at the last '@', so a
    password holding '@', ':' or '/' is found whole (a query value holding '@' widens it,
    which masks more, never less); SQLite paths have no user part."""
    scheme, sep, rest = url.partition("://")
    at = rest.rfind("@")
    if not sep or at < 0:
        return None
    user, colon, _ = rest[:at].partition(":")
    if not colon or "/" in user:
        return None
    start = len(scheme) + len(sep) + len(user) + 1
    return start, len(scheme) + len(sep) + at


def _secret_spans(url: str) -> list[tuple[int, int]]:
    """The password and secret query values (``?password=``, ...) of ``url``; a ``${VAR}``
    reference in their place is no secret (the secret is in the environment)."""
    password = _password_span(url)
    spans = [password] if password else []
    spans += [m.span(2) for m in _SECRET_QUERY.finditer(url, spans[0][1] if spans else 0)]
    return [(s, e) for s, e in spans if not _REFERENCE.fullmatch(url[s:e])]


def hide_password(url: str) -> str:
    """``url`` as it may be printed or stored: every secret masked as ``***``."""
    for start, end in reversed(_secret_spans(url)):
        url = url[:start] + MASK + url[end:]
    return url


def _without_secrets(text: str, url: str) -> str:
    """``text`` (e.g. a driver's error message) with the secrets of ``url`` masked, as
    written in the URL and percent-decoded."""
    for start, end in _secret_spans(url):
        for secret in {url[start:end], unquote(url[start:end])} - {""}:
            text = text.replace(secret, MASK)
    return hide_password(text)


def expand_storage(setting: str) -> str:
    """``search.storage`` with every ``${VAR}`` replaced by the variable's value. A reference
    that is the whole password is percent-encoded, so the variable holds the password as is."""

    def value_of(name: str) -> str:
        if name not in os.environ:
            what = "URL" if setting == "${" + name + "}" else "value"
            raise SpecError("search.storage", f"environment variable {name} is not set; {hide_password(setting)!r} refers to it (set it to the {what} before running share-search)")
        return os.environ[name]

    span = _password_span(setting)
    if span and _REFERENCE.fullmatch(setting[span[0]:span[1]]):
        name = _REFERENCE.fullmatch(setting[span[0]:span[1]])[1]
        setting = setting[: span[0]] + quote(value_of(name), safe="") + setting[span[1]:]
    return _REFERENCE.sub(lambda m: value_of(m[1]), setting)


def storage_url(spec: Spec, run_dir: Path) -> str:
    """The URL to open: ``search.storage`` expanded, or SQLite in the run folder. A run folder
    keeps a password it was given masked; ``SHARE_SEARCH_STORAGE`` then gives the URL again."""
    if not spec.search.storage:
        return f"sqlite:///{(run_dir / 'study.db').resolve()}"
    url = expand_storage(spec.search.storage)
    if MASK not in url or hide_password(url) != url:
        return url
    given = os.environ.get(STORAGE_ENV)
    if given is None:
        raise RunError(
            f"search.storage: the run keeps its storage URL without the password ({url}; share-search never stores one); "
            f"set {STORAGE_ENV} to the full URL, or write the password as ${{VAR}} in the spec"
        )
    if hide_password(given) != url:
        raise RunError(f"{STORAGE_ENV}: {hide_password(given)!r} does not match the run's storage {url!r}")
    return given


def resolve_storage(spec: Spec, run_dir: Path) -> tuple[Spec, str]:
    """(the spec as the run keeps it, the storage URL to open). The spec kept (written to the
    run folder, the study, exports, and sent to Ray) holds ``${VAR}`` references or a masked
    URL, never a password; with no ``search.storage``, ``SHARE_SEARCH_STORAGE`` gives the URL."""
    if not spec.search.storage and os.environ.get(STORAGE_ENV):
        spec = spec.with_search(storage="${" + STORAGE_ENV + "}")
    url = storage_url(spec, run_dir)
    if spec.search.storage and hide_password(spec.search.storage) != spec.search.storage:
        spec = spec.with_search(storage=hide_password(spec.search.storage))
    return spec, url


class _MaskedPickleStorage(optuna.storages.RDBStorage):
    """An RDB storage that pickles with its URL's password masked: Ray Tune pickles the
    searcher, which holds the storage, into the run folder (``tuner.pkl``, searcher state).
    A run never unpickles one: ``--resume`` opens the storage anew."""

    def __getstate__(self) -> dict[str, Any]:
        state = super().__getstate__()
        state["url"] = hide_password(self.url)
        return state


def open_storage(url: str) -> optuna.storages.RDBStorage:
    """An RDB storage; a database that cannot be reached is a clear error, not a traceback."""
    engine_kwargs: dict[str, Any] = {}
    if url.startswith("sqlite"):
        engine_kwargs["connect_args"] = {"timeout": SQLITE_TIMEOUT_S}
    else:
        engine_kwargs["pool_pre_ping"] = True
    try:
        return _MaskedPickleStorage(url, engine_kwargs=engine_kwargs)
    except Exception as exc:  # SQLAlchemy raises many kinds; all mean "cannot use this URL"
        shown = hide_password(url)
        raise RunError(f"search.storage: cannot open storage {shown!r}: {type(exc).__name__}: {_without_secrets(str(exc).splitlines()[0], url)}") from None


def objective_names(spec: Spec, problem: Problem) -> tuple[list[str], list[str]]:
    """Objective names and Optuna directions for the spec's objective and cost."""
    if spec.search.objective == "delta_m":
        names, directions = ["delta_m"], ["maximize"]
    else:
        names = [f"{t.name}.{t.metric}" for t in problem.tasks]
        directions = [t.direction for t in problem.tasks]
    if spec.search.cost:
        names.append(spec.search.cost)
        directions.append("minimize")
    return names, directions


def check_study(spec: Spec, problem: Problem, storage, resume: bool) -> bool:
    """Whether the spec's study exists; raises, writing nothing, where it may not be created
    (it exists and this is no resume) or resumed (it is missing, or has other objectives)."""
    names, directions = objective_names(spec, problem)
    exists = spec.name in {s.study_name for s in optuna.get_all_study_summaries(storage, include_best_trial=False)}
    where = hide_password(storage.url)
    if exists and not resume:
        raise RunError(f"study {spec.name!r} already exists in {where}; continue it with --resume, or give the spec another name")
    if resume and not exists:
        raise RunError(f"--resume: {where} holds no study named {spec.name!r} to continue (search.storage changed?)")
    if exists:
        study = optuna.load_study(study_name=spec.name, storage=storage)
        if list(study.directions) != [optuna.study.StudyDirection[d.upper()] for d in directions]:
            raise RunError(f"study {spec.name!r} has other objectives than the spec ({', '.join(names)}); it cannot be resumed with this spec")
        check_same_delta_m(spec, delta_m_convention_of(study), f"study {spec.name!r}")
        check_same_repeats(spec, repeats_of(study), f"study {spec.name!r}")
    return exists


def check_same_delta_m(spec: Spec, recorded: str, where: str) -> None:
    """A run resumes with the Δm convention it started with: its trials' Δm (and a search's
    objective values) would otherwise mix two conventions."""
    if recorded != spec.search.delta_m:
        raise RunError(f"search.delta_m: a run resumes with the Δm convention it started with ({recorded!r} for {where}), got {spec.search.delta_m!r}")


def check_same_repeats(spec: Spec, recorded: int, where: str) -> None:
    """A run resumes with the seeds per architecture it started with: Δm pairs each seed with
    the baseline's seed of the same repeat, which a run with fewer seeds never trained."""
    if recorded != spec.search.repeats:
        raise RunError(f"search.repeats: a run resumes with the seeds per architecture it started with ({recorded} for {where}), got {spec.search.repeats}")


def repeats_of(study: optuna.Study) -> int:
    """The ``search.repeats`` a study was started with, from the spec it keeps (1 before the setting existed)."""
    return int(((study.user_attrs.get("spec") or {}).get("search") or {}).get("repeats", 1))


def delta_m_convention_of(study: optuna.Study) -> str:
    """The ``search.delta_m`` a study's trials were ranked with, from the spec it keeps (a
    study made before the setting existed used ``primary``): a leaderboard read again later
    uses the run's convention, never the one of a spec at hand."""
    convention = ((study.user_attrs.get("spec") or {}).get("search") or {}).get("delta_m", DELTA_M_PRIMARY)
    if convention not in DELTA_M_CONVENTIONS:
        raise RunError(f"study {study.study_name!r} records search.delta_m {convention!r}, which is none of {', '.join(DELTA_M_CONVENTIONS)}")
    return convention


def _task_attr(task) -> dict:
    """What the report needs of a task; class names only where the data named its classes."""
    attr = {"name": task.name, "type": task.type, "metric": task.metric, "higher_is_better": task.higher_is_better, "metrics": task.metric_directions}
    return {**attr, "class_names": list(task.class_names)} if task.class_names else attr


def create_or_load_study(spec: Spec, problem: Problem, storage, resume: bool) -> optuna.Study:
    if check_study(spec, problem, storage, resume):
        return optuna.load_study(study_name=spec.name, storage=storage)
    names, directions = objective_names(spec, problem)
    study = optuna.create_study(study_name=spec.name, storage=storage, directions=directions)
    study.set_metric_names(names)
    study.set_user_attr("spec", spec.to_dict())
    study.set_user_attr("n_stages", problem.backbone.n_stages)  # drawings of columns need the depth
    study.set_user_attr("tasks", [_task_attr(t) for t in problem.tasks])
    return study


QUEUED_PARAMS = "queued_params"  # user attribute: the values a queued trial was enqueued with


def enqueue(study: optuna.Study, params: dict[str, Any], user_attrs: dict[str, Any] | None = None) -> None:
    """Queue a trial that runs with ``params``; they are also kept as a user attribute, so
    what a queued trial will run with can be read before it has asked for its values."""
    study.enqueue_trial(params, user_attrs={**(user_attrs or {}), QUEUED_PARAMS: params}, skip_if_exists=False)


def ask(study: optuna.Study) -> optuna.Trial:
    """The next trial (a queued one first). It carries the ``interrupted`` reason until it is
    told: a trial a stopped driver never told keeps it, and the trial's own reason (or none)
    replaces it when it is told, since Optuna takes user attributes only while it runs."""
    trial = study.ask()
    trial.set_user_attr("fail_reason", INTERRUPTED)
    return trial


def mark_interrupted(study: optuna.Study) -> list[optuna.trial.FrozenTrial]:
    """Trials a stopped or killed driver left RUNNING become FAIL (their reason, set when they
    were asked, is ``interrupted``), and race trials it left queued too; returns the
    RUNNING ones, for a retry."""
    left = study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
    for t in left:
        study.tell(t.number, state=TrialState.FAIL, skip_if_finished=True)
    _close_queued_race_trials(study)
    now = study.get_trials(deepcopy=False)
    return [now[t.number] for t in left]


def _close_queued_race_trials(study: optuna.Study) -> None:
    """Race trials a stopped driver queued and never asked are closed as interrupted, so no
    later phase asks them (queued trials are asked oldest first); the race queues what it
    still lacks when it resumes (``engine.race``)."""
    while True:
        waiting = min(study.get_trials(deepcopy=False, states=(TrialState.WAITING,)), key=lambda t: t.number, default=None)
        if waiting is None or RACE not in waiting.user_attrs:
            return
        study.tell(ask(study), state=TrialState.FAIL)


def planned_params(t: optuna.trial.FrozenTrial) -> dict[str, Any]:
    """The values a trial runs with: those it sampled, plus those it was queued with (a
    queued trial, or one a killed driver left before it asked, has them only there)."""
    return {**t.user_attrs.get(QUEUED_PARAMS, {}), **t.params}


def is_interrupted(t: optuna.trial.FrozenTrial) -> bool:
    # no reason at all: left running by a driver of an earlier version, told FAIL on resume
    return t.state == TrialState.FAIL and t.user_attrs.get("fail_reason", INTERRUPTED) == INTERRUPTED


def failed_trials(study: optuna.Study) -> list[optuna.trial.FrozenTrial]:
    """Trials that failed for a reason of their own (interrupted ones are retried, not failed)."""
    return [t for t in study.get_trials(deepcopy=False, states=(TrialState.FAIL,)) if not is_interrupted(t)]


def unretried_interrupted(study: optuna.Study) -> list[optuna.trial.FrozenTrial]:
    """Interrupted trials that no later trial retries yet (a retry records ``retry_of``)."""
    trials = study.get_trials(deepcopy=False)
    retried = {t.user_attrs.get(RETRY_OF) for t in trials}
    # a race trial is not retried here: the race resumes its rounds itself (engine.race)
    # nor a re-proposal waiting for its twin (duplicate_of): the twin's retry stands for it
    return [t for t in trials if is_interrupted(t) and t.number not in retried and RACE not in t.user_attrs and not is_re_proposal(t)]


def queue_retries(study: optuna.Study) -> list[int]:
    """Queue one retry per interrupted trial not retried yet, with the same values and role;
    returns the numbers retried. Values a trial had not asked for yet are sampled anew."""
    retried = []
    for t in unretried_interrupted(study):
        attrs = {k: v for k, v in t.user_attrs.items() if k in ("role", "fixed_arch")}
        kept = completed_seed_attrs(t)
        if kept:  # search.repeats: seeds that finished are not trained again
            attrs[SEEDS] = kept
        enqueue(study, planned_params(t), {**attrs, RETRY_OF: t.number})
        retried.append(t.number)
    return retried


def completed_seed_attrs(t: optuna.trial.FrozenTrial) -> list[dict[str, Any]]:
    """The COMPLETE seeds a trial recorded (user attribute ``seeds``), as stored."""
    seeds = t.user_attrs.get(SEEDS)
    return [s for s in seeds if isinstance(s, dict) and s.get("state") == "COMPLETE"] if isinstance(seeds, list) else []


def finished_trials(study: optuna.Study) -> list[optuna.trial.FrozenTrial]:
    """Trials that count against the budget: complete, pruned, or failed for a reason of their own
    (the race's trials add seeds to architectures already counted; a re-proposal that was not
    trained, ``duplicate_of``, cost nothing)."""
    out = []
    for t in study.get_trials(deepcopy=False):
        if RACE in t.user_attrs or is_re_proposal(t):
            continue
        if t.state in (TrialState.COMPLETE, TrialState.PRUNED):
            out.append(t)
        elif t.state == TrialState.FAIL and not is_interrupted(t):
            out.append(t)
    return out


def is_queued(trial: optuna.Trial | optuna.trial.FrozenTrial) -> bool:
    """Whether a trial was queued (``enqueue``: a reference, a retry, an untried family, a race
    trial, a grid point) rather than proposed by the sampler."""
    return QUEUED_PARAMS in trial.user_attrs


def is_re_proposal(t: optuna.trial.FrozenTrial) -> bool:
    """Whether a sampled trial re-proposed a searched one (``duplicate_of``): told that trial's
    result, or waiting for it, and not trained itself."""
    return t.user_attrs.get(DUPLICATE_OF) is not None


def searched_twin(study: optuna.Study, params: dict[str, Any], training: Collection[int] = ()) -> optuna.trial.FrozenTrial | None:
    """The earliest searched trial with exactly ``params`` that ended COMPLETE or PRUNED or is
    among ``training`` (still training in this phase), or None. Equal values mean an equal run:
    the seeds derive from the spec's seed. Counting a twin still training as one keeps what is
    trained independent of timing (same spec, same leaderboard). A FAILED trial is no twin (a
    failure may be transient), nor a reference (trained outside the search, without the
    scheduler), a race trial or a re-proposal."""
    for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.PRUNED, TrialState.RUNNING)):
        if t.state == TrialState.RUNNING and t.number not in training:
            continue
        if t.user_attrs.get("role") or RACE in t.user_attrs or is_re_proposal(t):
            continue
        if planned_params(t) == params:
            return t
    return None


def trials_frame(records: Sequence[TrialRecord], tasks: Sequence[Task]) -> pd.DataFrame:
    """One row per trial in the columns ``rank.leaderboard`` reads (validation metrics only).

    Queued trials and interrupted ones (``--resume`` retries them) are left out.
    """
    rows = []
    for r in records:
        if not _listed(r):
            continue
        rows.append({
            "trial": r.number,
            "state": r.state,
            "family": r.family_name,
            "arch": r.arch or "",
            "role": "" if r.role == ROLE_SEARCHED else r.role,
            "baseline": r.role == ROLE_SINGLE_TASK,
            "params": r.cost.params,
            "macs": r.cost.macs,
            "time_s": r.cost.time_s,
            "best_epoch": r.best_epoch,
            "fail_reason": r.failure.reason if r.failure else "",
            **{f"val.{t.name}": r.metric(t) for t in tasks},
            **{metric_column(t.name, m): r.value(t.name, m) for t in tasks for m in t.metrics},
        })
    every_metric = [metric_column(t.name, m) for t in tasks for m in t.metrics]
    return pd.DataFrame(rows, columns=[*TRIAL_COLUMNS, *(f"val.{t.name}" for t in tasks), *every_metric])


def _listed(r: TrialRecord) -> bool:
    """Whether a trial is on the leaderboard: not queued, not interrupted (as ``is_interrupted``)."""
    if r.race is not None:  # its seeds are folded into the trial it raced for (record.fold_race_seeds)
        return False
    return not (r.state == TrialState.WAITING.name or (r.state == TrialState.FAIL.name and (r.failure is None or r.failure.reason == INTERRUPTED)))


def seeds_frame(records: Sequence[TrialRecord], tasks: Sequence[Task]) -> pd.DataFrame:
    """One row per seed of each listed trial that has metrics (``trial``, ``repeat``, and the
    metric columns of ``trials_frame``): what ``rank.leaderboard`` pairs and spreads."""
    rows = [
        {"trial": r.number, "repeat": seed.repeat,
         **{f"val.{t.name}": seed.value(t.name, t.metric) for t in tasks},
         **{metric_column(t.name, m): seed.value(t.name, m) for t in tasks for m in t.metrics}}
        for r in records if _listed(r) and r.val is not None
        for seed in r.seed_results if seed.val is not None
    ]
    columns = ["trial", "repeat", *(f"val.{t.name}" for t in tasks), *(metric_column(t.name, m) for t in tasks for m in t.metrics)]
    return pd.DataFrame(rows, columns=list(dict.fromkeys(columns)))


def leaderboard_of(
    records: Sequence[TrialRecord], tasks: Sequence, rank_by: str = "delta_m", budget: str | None = None, convention: str = DELTA_M_PRIMARY,
) -> pd.DataFrame:
    """The leaderboard of a study's trials, Δm by ``convention`` (``search.delta_m``), the
    confirmation race's leader and the candidates it kept first (``racing``); ranked
    by Pareto front instead of Δm when the study has no single-task baseline
    (``search.baselines: false``). ``tasks``: each with ``name``, ``metric``,
    ``higher_is_better``, ``metrics`` and ``metric_directions`` (a ``Task`` or the report's ``TaskInfo``)."""
    frame = trials_frame(records, tasks)
    if rank_by == "delta_m" and not frame["baseline"].any():
        rank_by = "pareto"  # Δm is undefined without the single-task networks
    standing = race_standing(records, tasks, convention) if rank_by == "delta_m" else None  # the race ranks on paired Δm
    board = leaderboard(frame, {t.name: t.higher_is_better for t in tasks}, rank_by=rank_by, budget=budget,
                        delta_m_over=delta_m_terms(tasks, convention), seeds=seeds_frame(records, tasks), first=race_order(standing))
    if standing is not None:
        board.attrs["race"] = standing
    return board


def load_run_study(run_dir: str | Path, trust_code: bool = False) -> tuple[optuna.Study, Spec]:
    """Open the study of an existing run folder (its resolved spec says where it lives).

    A run folder may come from anyone: its spec's ``plugins`` are imported only with ``trust_code``."""
    from ..spec.model import load_spec

    run_dir = Path(run_dir).resolve()
    if not run_dir.is_dir():
        raise RunError(f"{run_dir}: no such run folder")
    spec_file = run_dir / "spec.resolved.yaml"
    if not spec_file.is_file():
        raise RunError(f"{run_dir} is not a run folder (no spec.resolved.yaml); run `share-search run SPEC` first")
    spec = load_spec(spec_file, trust_code=trust_code)
    storage = open_storage(storage_url(spec, run_dir))
    try:
        study = optuna.load_study(study_name=spec.name, storage=storage)
    except KeyError:
        raise RunError(f"{run_dir}: the storage holds no study named {spec.name!r}") from None
    return study, spec
