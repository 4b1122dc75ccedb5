"""A run folder's life: create or resume it, search, rank, export.

Layout of ``runs/<spec name>/``: ``study.db`` (the Optuna study, unless the spec names
another storage), ``spec.resolved.yaml``, ``ray/`` (Ray Tune's trial folders and
checkpoints), ``leaderboard.csv``, ``export/rank-<k>/`` and ``run.log``.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import pandas as pd

from .errors import RunError
from .problem import Problem, load_problem
from .rank import leaderboard
from .spaces import grid_points, grid_problems
from .spec import Spec, load_spec
from .study import check_study, create_or_load_study, load_run_study, mark_interrupted, open_storage, queue_retries, storage_url, trials_frame

log = logging.getLogger("share_search")


@dataclass
class RunOutcome:
    run_dir: Path
    board: pd.DataFrame
    exported: list[Path]
    counts: dict[str, int]
    problem: Problem


def run_dir_for(spec: Spec, out: str | Path | None) -> Path:
    return Path(out or spec.search.out or Path("runs") / spec.name).resolve()


def check_run_dir(run_dir: Path, resume: bool) -> None:
    """Refuse to overwrite a run, or to resume one that is not there; writes nothing."""
    has_run = (run_dir / "spec.resolved.yaml").exists()
    if has_run and not resume:
        raise RunError(f"{run_dir} already holds a run; continue it with --resume, or choose another folder with --out")
    if resume and not has_run:
        raise RunError(f"--resume: {run_dir} holds no run to continue (no spec.resolved.yaml)")
    if run_dir.exists() and not run_dir.is_dir():
        raise RunError(f"--out: {run_dir} exists and is not a folder")


def _log_to_file(run_dir: Path) -> logging.Handler:
    handler = logging.FileHandler(run_dir / "run.log")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    for name in ("share_search", "ray", "optuna"):
        logging.getLogger(name).addHandler(handler)
    logging.getLogger("share_search").setLevel(logging.INFO)
    return handler


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

    run_dir = run_dir_for(spec, out)
    check_run_dir(run_dir, resume)
    if resume:
        stored = load_spec(run_dir / "spec.resolved.yaml")
        if stored.model_copy(update={"search": spec.search}) != spec:
            raise RunError(f"--resume: the spec differs from the one {run_dir} was started with (only search settings may change)")
    if spec.search.sampler == "grid" and grid_problems(spec):
        raise RunError(grid_problems(spec)[0])
    problem = load_problem(spec)
    if spec.search.sampler == "grid":
        log.info("grid: %d architectures", len(grid_points(problem)))
    storage = open_storage(storage_url(spec, run_dir)) if spec.search.storage else None
    if storage is not None:  # a shared database: its study is checked before anything is written
        check_study(spec, problem, storage, resume)
    started = search.start_ray(address)  # a wrong --address also fails before anything is written
    handler = None
    try:
        search.check_resources(spec.search.resources)  # a trial no node can hold would wait forever
        run_dir.mkdir(parents=True, exist_ok=True)
        if storage is None:
            storage = open_storage(storage_url(spec, run_dir))
        study = create_or_load_study(spec, problem, storage, resume)
        (run_dir / "spec.resolved.yaml").write_text(spec.to_yaml())
        handler = _log_to_file(run_dir)
        if resume:  # trials a killed driver left running, and interrupted ones, run again with the same values
            mark_interrupted(study)
            queue_retries(study)
        try:
            counts = search.search(study, problem, storage, run_dir, show_progress=show_progress, on_phase=on_phase)
        except BaseException:  # Ctrl-C or a crash: trials this driver left running are retried by --resume
            left = mark_interrupted(study)
            log.warning("search stopped; %d unfinished trial(s) marked interrupted (continue with --resume)", len(left))
            raise
    finally:
        if started:
            import ray

            ray.shutdown()
        if handler is not None:
            for name in ("share_search", "ray", "optuna"):
                logging.getLogger(name).removeHandler(handler)
            handler.close()
    board = leaderboard_of(study, problem)
    board.to_csv(run_dir / "leaderboard.csv", index=False)
    exported = []
    top = min(spec.search.export_top, int(board["rank"].notna().sum()))
    if top:
        from .export import export_ranked

        exported = export_ranked(run_dir, problem, board, top)
    from .dashboard import annotate_study

    annotate_study(study, run_dir, board, exported)  # study note and exported checkpoints, for optuna-dashboard
    return RunOutcome(run_dir, board, exported, counts, problem)


def leaderboard_of(study, problem: Problem, rank_by: str = "delta_m", budget: str | None = None) -> pd.DataFrame:
    frame = trials_frame(study, problem.tasks)
    if rank_by == "delta_m" and not frame["baseline"].any():
        rank_by = "pareto"  # no single-task baseline (search.baselines: false): Δm is undefined
    return leaderboard(frame, problem.higher_is_better, rank_by=rank_by, budget=budget)


def open_run(run_dir: str | Path) -> tuple[object, Spec]:
    run_dir = Path(run_dir).resolve()
    if not run_dir.is_dir():
        raise RunError(f"{run_dir}: no such run folder")
    return load_run_study(run_dir)
