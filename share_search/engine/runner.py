"""A run folder's life: create or resume it, search, rank, export.

Layout of ``runs/<spec name>/``: ``study.db`` (the Optuna study, unless the spec names
another storage), ``spec.resolved.yaml``, ``ray/`` (Ray Tune's trial folders and
checkpoints), ``leaderboard.csv``, ``export/rank-<k>/`` and ``run.log``.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from contextlib import contextmanager
from typing import Any, Callable, Iterator, Mapping

import optuna
import pandas as pd
from optuna.trial import TrialState

from ..errors import RunError, ShareSearchError, SpecError
from ..runs.preflight import check_device, check_folder_can_be_made, nearest_existing
from ..runs.record import study_records
from ..runs.run_folder import Run
from ..runs.uncertainty import separation_line
from ..runs.study import check_same_delta_m, check_same_repeats, check_study, create_or_load_study, delta_m_convention_of, failed_trials, hide_password, leaderboard_of, mark_interrupted, open_storage, queue_retries, resolve_storage
from ..space.spaces import check_grid, grid_points
from ..spec.model import DELTA_M_ALL_METRICS, Spec, load_spec
from ..text import plural
from ..train.problem import Problem, load_problem

log = logging.getLogger("share_search")


@dataclass
class RunOutcome:
    run_dir: Path
    board: pd.DataFrame
    exported: list[Path]
    counts: dict[str, int]
    problem: Problem
    storage_shown: str = ""  # the study's storage URL, password masked
    failure_origins: dict[int, str] = field(default_factory=dict)  # failed trial number -> user | internal


def run_dir_for(spec: Spec, out: str | Path | None) -> Path:
    return Path(out or spec.search.out or Path("runs") / spec.name).resolve()


def check_run_dir(run_dir: Path, resume: bool) -> None:
    """Refuse to overwrite a run or a folder of the user's, or to resume a run that is not
    there, and a folder that cannot be made or written; writes nothing."""
    check_folder_can_be_made(run_dir, "--out")
    has_run = (run_dir / "spec.resolved.yaml").exists()
    if has_run and not resume:
        raise RunError(f"{run_dir} already holds a run; continue it with --resume, or choose another folder with --out")
    if resume and not has_run:
        raise RunError(f"--resume: {run_dir} holds no run to continue (no spec.resolved.yaml)")
    if not resume and run_dir.is_dir() and any(run_dir.iterdir()):
        raise RunError(f"--out: a new run needs a new or empty folder, so that no file of yours is overwritten; {run_dir} is not empty and holds no run")


def _log_to_file(run_dir: Path) -> logging.Handler:
    """``run.log`` gets share-search's lines (phases, each trial's outcome, failures, the
    leaderboard, exports) and warnings of Ray and Optuna, for as long as the run lasts."""
    handler = logging.FileHandler(run_dir / "run.log")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    for name in ("share_search", "ray", "optuna"):
        logging.getLogger(name).addHandler(handler)
    logging.getLogger("share_search").setLevel(logging.INFO)
    return handler


def _stop_logging(handler: logging.Handler | None) -> None:
    if handler is not None:
        for name in ("share_search", "ray", "optuna"):
            logging.getLogger(name).removeHandler(handler)
        handler.close()


def _log_start(spec: Spec, problem: Problem, run_dir: Path, resume: bool) -> None:
    d = problem.data
    log.info("%s run %r in %s", "resumed" if resume else "started", spec.name, run_dir)
    log.info("data %s: input shape %s; train %d, val %d, test %d", d.name, d.input_shape, *d.sizes.values())
    if d.manifest is not None:
        log.info("data folder %s: %s", d.manifest.root, d.manifest.memory)
    log.info("tasks: %s", "; ".join(f"{t.name} ({t.type}, {t.metric})" for t in problem.tasks))
    if problem.backbone.weights_note:
        log.info("backbone.weights: %s", problem.backbone.weights_note)
    s = spec.search
    log.info("search: sampler %s, objective %s, Δm over %s, %s, concurrency %d", s.sampler, s.objective,
             "every metric of each task" if s.delta_m == DELTA_M_ALL_METRICS else "each task's primary metric", s.budget(), s.concurrency)
    if s.repeats > 1:
        log.info("search.repeats: %d seeds per architecture (seeds %d..%d), each a Ray trial; Δm paired by seed", s.repeats, spec.seed, spec.seed + s.repeats - 1)


def _refresh_report(study, run_dir: Path, board: pd.DataFrame) -> None:
    """A ``report.html`` that ``share-search report`` left in the run folder is rewritten, so a
    resumed run's report shows every trial; a file of another origin is left alone. ``board``:
    the run's leaderboard (ranked by Δm), built once per run."""
    from ..runs.report import DEFAULT_TOP, REPORT_TITLE, render_html, report_data

    path = run_dir / "report.html"
    if not path.is_file() or f"<title>{REPORT_TITLE}" not in path.read_text(encoding="utf-8", errors="replace")[:4096]:
        return
    path.write_text(render_html(report_data(study, top=DEFAULT_TOP, board=board)), encoding="utf-8")
    log.info("report rewritten: %s", path)


def run_search(
    spec: Spec,
    out: str | Path | None = None,
    resume: bool = False,
    address: str | None = None,
    show_progress: bool = True,
    on_phase: Callable[[str, int], None] | None = None,
) -> RunOutcome:
    """Everything ``share-search run`` does; every input is checked before anything is written."""
    from . import search
    from .race import confirm

    run_dir = run_dir_for(spec, out)
    check_run_dir(run_dir, resume)
    spec, url = resolve_storage(spec, run_dir)  # from here on the spec holds no password
    if resume:
        stored = load_spec(run_dir / "spec.resolved.yaml", trust_code=False)  # the given spec's plugins are imported already
        if stored.model_copy(update={"search": spec.search}) != spec:
            raise RunError(f"--resume: the spec differs from the one {run_dir} was started with (only search settings may change)")
        check_same_delta_m(spec, stored.search.delta_m, str(run_dir))  # before Ray starts; the study is checked again when opened
        check_same_repeats(spec, stored.search.repeats, str(run_dir))
    check_grid(spec)
    problem = load_problem(spec)
    if spec.search.sampler == "grid":
        log.info("grid: %d architectures", len(grid_points(problem)))
    if address is None:  # trials train on this machine; a cluster's nodes may have devices this one lacks
        check_device(spec.train.device, spec.train.precision)
    storage = open_storage(url) if spec.search.storage else None
    if storage is not None:  # a shared database: its study is checked before anything is written
        check_study(spec, problem, storage, resume)
    made_from = nearest_existing(run_dir)  # what a failed start removes: the folders below it
    study = failure = None
    started = search.start_ray(address)  # a wrong --address also fails before anything is written
    handler = None
    try:
        search.check_resources(spec.search.resources)  # a trial no node can hold would wait forever
        _make_run_dir(run_dir)
        if storage is None:
            storage = open_storage(url)
        study = create_or_load_study(spec, problem, storage, resume)
        (run_dir / "spec.resolved.yaml").write_text(spec.to_yaml())
        handler = _log_to_file(run_dir)
        _log_start(spec, problem, run_dir, resume)
        if resume:  # trials a killed driver left running, and interrupted ones, run again with the same values
            mark_interrupted(study)
            queue_retries(study)
        try:
            counts = search.search(study, problem, storage, run_dir, show_progress=show_progress, on_phase=on_phase)
            confirm(study, problem, storage, run_dir, show_progress=show_progress, on_phase=on_phase, counts=counts)
        except BaseException as stop:  # Ctrl-C or a crash: trials this driver left running are retried by --resume
            if isinstance(stop, KeyboardInterrupt):
                _free_interrupted_frames(stop)
            left = mark_interrupted(study)
            log.warning("search stopped; %s marked interrupted (continue with --resume)", plural(len(left), "unfinished trial"))
            raise
        board, exported = _rank_and_export(study, problem, run_dir, spec)
        origins = {t.number: t.user_attrs.get("fail_origin") or "unknown" for t in failed_trials(study)}
    except BaseException as exc:
        if handler is not None:
            log.error("run stopped: %s", f"{type(exc).__name__}: {exc}".rstrip(": "))
        if resume or _has_results(study):
            raise
        failure = exc  # a start that produced nothing: undone below, once Ray and the log are closed
        raise
    finally:
        if started:
            import ray

            ray.shutdown()
        _stop_logging(handler)
        if failure is not None:
            undone = _undo_start(spec, run_dir, made_from, storage, failure)
            if undone is not failure:  # else the failure itself goes on, unchanged
                raise undone from failure
    return RunOutcome(run_dir, board, exported, counts, problem, hide_password(url), origins)


def _free_interrupted_frames(stop: KeyboardInterrupt) -> None:
    """Ctrl-C can land inside a database call, and the frames its traceback keeps alive can
    hold that connection and with it SQLite's write lock, so marking the stopped trials
    would wait for it ("database is locked"). A Ctrl-C's traceback is never shown: drop it
    and free those frames first."""
    import gc

    stop.__traceback__ = None
    gc.collect()


def _rank_and_export(study, problem: Problem, run_dir: Path, spec: Spec) -> tuple[pd.DataFrame, list[Path]]:
    records = study_records(study)
    # the one leaderboard of this run: written, exported, annotated, reported; Δm as the study records it
    board = leaderboard_of(records, problem.tasks, convention=delta_m_convention_of(study))
    board.to_csv(run_dir / "leaderboard.csv", index=False)
    ranked = int(board["rank"].notna().sum())
    log.info("leaderboard: %s, %d ranked (%s)", plural(len(board), "trial"), ranked, run_dir / "leaderboard.csv")
    separation = separation_line(board)
    if separation:
        log.info("winner: %s", separation)
    if board.attrs.get("race") is not None:
        log.info("%s", board.attrs["race"].line())
    exported = []
    top = min(spec.search.export_top, ranked)
    if top:
        from ..runs.export import export_ranked

        exported = export_ranked(run_dir, problem, board, records, top)
    for k, path in enumerate(exported, start=1):
        log.info("exported rank %d (trial %s) to %s", k, board.loc[k - 1, "trial"], path)
    from ..runs.dashboard import annotate_study

    annotate_study(study, run_dir, board, exported)  # study note and exported checkpoints, for optuna-dashboard
    _refresh_report(study, run_dir, board)
    return board, exported


def _make_run_dir(run_dir: Path) -> None:
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise RunError(f"--out: cannot make {run_dir} ({exc.strerror or type(exc).__name__})") from exc


def _has_results(study) -> bool:
    """Whether a trial completed (or was pruned after reporting): what makes a run worth keeping."""
    if study is None:
        return False
    try:
        return any(t.state in (TrialState.COMPLETE, TrialState.PRUNED) for t in study.get_trials(deepcopy=False))
    except Exception:  # the storage cannot say: keep the run rather than remove results
        return True


def _undo_start(spec: Spec, run_dir: Path, made_from: Path, storage, failure: BaseException) -> BaseException:
    """A new run that stopped before any trial completed leaves nothing behind, so the same
    command can run again once the cause is fixed (``--resume`` would only repeat it).
    Removes what this start made: the folders it made (or, in an empty folder of the
    user's, what it wrote there) and the study it created in a shared storage. Returns
    the error to raise: the reason, then what was removed."""
    import shutil

    undone = []
    if spec.search.storage and storage is not None:  # check_study made sure it did not exist before
        try:
            optuna.delete_study(study_name=spec.name, storage=storage)
            undone.append(f"study {spec.name!r} deleted")
        except KeyError:
            pass
        except Exception as exc:
            undone.append(f"study {spec.name!r} NOT deleted ({type(exc).__name__})")
    if made_from == run_dir:  # the user's empty folder: emptied, kept
        entries = list(run_dir.iterdir())
        for entry in entries:
            shutil.rmtree(entry) if entry.is_dir() and not entry.is_symlink() else entry.unlink()
        if entries:
            undone.append(f"{run_dir} emptied")
    else:
        made = made_from / run_dir.relative_to(made_from).parts[0]
        if made.exists():
            shutil.rmtree(made, ignore_errors=True)
            undone.append(f"{made} removed")
    if not undone:  # it stopped before writing anything (e.g. resources no node has): nothing to report
        return failure
    outcome = f"no trial completed, so nothing was kept ({', '.join(undone)})"
    if isinstance(failure, KeyboardInterrupt):
        return KeyboardInterrupt(f"{outcome}; run the same command to start again")
    if isinstance(failure, ShareSearchError):
        reason = str(failure)
    else:
        reason = f"{type(failure).__name__}: {str(failure).strip()}".rstrip(": ")
    first_line = (reason.splitlines() or [type(failure).__name__])[0]
    return RunError(f"{first_line}; {outcome}; fix the cause and run again")


def run(
    spec: str | Path | Spec | Mapping[str, Any],
    *,
    out: str | Path | None = None,
    trials: int | None = None,
    concurrency: int | None = None,
    sampler: str | None = None,
    resume: bool = False,
    address: str | None = None,
    quiet: bool = False,
) -> Run:
    """Search as ``share-search run`` does and return the run.

    ``spec``: a YAML file (relative data paths start from its folder), a ``Spec`` or a dict
    of the same sections (relative paths start from the current folder). The keywords are
    the command's options: ``out`` (default ``runs/<name>``), ``trials``, ``concurrency``,
    ``sampler``, ``resume``, ``address`` (a Ray cluster to join) and ``quiet`` (no progress
    bar). Starts a local Ray for the search, and stops it after, unless Ray is already
    running in this process.
    """
    changes = {"trials": trials, "concurrency": concurrency, "sampler": sampler, "out": None if out is None else str(out)}
    with _optuna_quiet():
        outcome = run_search(as_spec(spec).with_search(**changes), resume=resume, address=address, show_progress=not quiet)
    return Run(outcome.run_dir)


@contextmanager
def _optuna_quiet() -> Iterator[None]:
    """Optuna's per-study info lines and experimental-feature warnings are share-search's
    business, not the caller's: hidden during a search, as the command hides them, and the
    caller's settings restored after."""
    import warnings

    import optuna

    verbosity = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
            yield
    finally:
        optuna.logging.set_verbosity(verbosity)


def as_spec(spec: str | Path | Spec | Mapping[str, Any]) -> Spec:
    """A spec given as a file, a ``Spec`` or plain data, validated."""
    from ..spec.model import parse_spec

    if isinstance(spec, Spec):
        return spec
    if isinstance(spec, (str, Path)):
        return load_spec(spec)
    if isinstance(spec, Mapping):
        return parse_spec(spec)
    raise SpecError("", f"a spec is a YAML file's path, a Spec or a dict of its sections, got {type(spec).__name__}")
