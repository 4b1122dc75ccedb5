"""The confirmation race (``search.confirm``): after the search and before export, the ``top``
architectures of the leaderboard race on more seeds until one is left or each has
``max_seeds`` (F-race, irace; the drop rule is ``runs.race.race_round``).

Each round gives every candidate still racing one more seed, the next repeat (seed ``seed +
r``, as ``search.repeats``), all trained in parallel as Ray trials by the search's own
machinery: one Optuna trial per candidate and round, queued with the candidate's values and
the seeds it already has (kept, as a resumed search keeps finished seeds), so the searcher
hands out one Ray trial for the new seed and tells the trial the mean over all its seeds.
Paired Δm needs the single-task networks of the same seed, and a trial selects its epoch on
Δm against them, so the baseline's seeds the race may use are trained first, in one phase
of their own (in parallel, one trial holding them). Every race trial carries the user
attribute ``race`` (whose seeds, which round, the race's setup), and the leaderboard, export
and report read the race back from those trials (``runs.racing``); an interrupted race
continues from the same replay with ``--resume``, keeping the seeds that finished.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any, Callable

import optuna

from ..runs.racing import RaceStanding, race_setup, race_standing
from ..runs.record import RACE, TrialRecord, baseline_of, study_records
from ..runs.study import SEEDS, delta_m_convention_of, enqueue, leaderboard_of, planned_params
from ..train.problem import Problem
from .search import baseline_from_study, run_phase

log = logging.getLogger("share_search")


def confirm(
    study: optuna.Study,
    problem: Problem,
    storage,
    run_dir: Path,
    show_progress: bool = True,
    on_phase: Callable[[str, int], None] | None = None,
    counts: dict[str, int] | None = None,
) -> RaceStanding | None:
    """Run the race, or what an interrupted one lacks; returns where it stands (None: no race)."""
    spec = problem.spec
    if spec.search.confirm is None:
        return None
    convention = delta_m_convention_of(study)
    records = study_records(study)
    setup = race_setup(records) or new_setup(records, problem, convention)
    if setup is None:
        return None
    stamp = time.strftime("%Y%m%d-%H%M%S")

    def phase(name: str, queued: int, repeats: int) -> None:
        log.info("race phase %s: %d trial(s), %d seeds each", name, queued, repeats)
        if on_phase:
            on_phase(name, queued)
        outcome = run_phase(study, problem, storage, run_dir, f"{name.replace(' ', '-')}-{stamp}", queued,
                            baseline_from_study(study, problem), False, show_progress, repeats=repeats)
        for key, value in outcome.counts.items():
            if counts is not None:
                counts[key] = counts.get(key, 0) + value

    k, most = int(setup["start_seeds"]), int(setup["max_seeds"])
    base = baseline_of(records)
    if base is not None and any(r not in base.completed_seeds() for r in range(most)):
        _queue(study, base, {**setup, "of": base.number, "round": 0, "pairing": True}, most)
        phase("race baseline seeds", 1, most)
    standing = race_standing(study_records(study), problem.tasks, convention)
    base = baseline_of(study_records(study))
    if standing is None or base is None or any(r not in base.completed_seeds() for r in range(most)):
        log.warning("confirmation race stopped: the single-task baseline's seeds %d..%d did not all complete, so paired Δm is undefined", k, most - 1)
        return standing
    while not standing.finished:
        j, records = standing.next_round(), study_records(study)
        rows = {r.number: r for r in records if r.race is None}
        need = [c for c in standing.survivors if (k + j - 1) not in rows[c].completed_seeds()]
        for c in need:
            _queue(study, rows[c], {**setup, "of": c, "round": j}, k + j)
        if need:
            phase(f"race round {j}", len(need), k + j)
        after = race_standing(study_records(study), problem.tasks, convention)
        if len(after.rounds) == len(standing.rounds):
            log.warning("confirmation race stopped in round %d: its seeds did not all complete (see the failed trials)", j)
            return after
        standing = after
    study.set_user_attr(RACE, standing.summary())  # for the dashboard's study page and later readers
    log.info("%s", standing.line())
    return standing


def new_setup(records: list[TrialRecord], problem: Problem, convention: str) -> dict[str, Any] | None:
    """The race's candidates (the leaderboard's ``top`` by mean Δm) and rules, stored with every race trial."""
    confirm = problem.spec.search.confirm
    board = leaderboard_of(records, problem.tasks, convention=convention)
    ranked = board[board["rank"].notna()].sort_values("rank")
    candidates = [int(n) for n in ranked["trial"].head(confirm.top)]
    base = baseline_of(records)
    if len(candidates) < 2 or base is None:
        log.warning("confirmation race skipped: it needs 2 ranked trials and the single-task baseline, the study has %d ranked", len(ranked))
        return None
    log.info("confirmation race: candidates %s (top %d by mean Δm), up to %d seeds each, α = %g",
             candidates, confirm.top, confirm.max_seeds, confirm.alpha)
    return {"candidates": candidates, "baseline": base.number, "start_seeds": problem.spec.search.repeats,
            "max_seeds": confirm.max_seeds, "alpha": confirm.alpha}


def _queue(study: optuna.Study, record: TrialRecord, race: dict[str, Any], repeats: int) -> None:
    """Queue one race trial for ``record``: its values and role, and its COMPLETE seeds below
    ``repeats`` as kept seeds (history and details left with the originals)."""
    frozen = study.trials[record.number]
    kept = [{k: v for k, v in s.to_dict().items() if k not in ("history", "details")}
            for s in record.completed_seeds().values() if s.repeat < repeats]
    attrs = {key: frozen.user_attrs[key] for key in ("role", "fixed_arch") if key in frozen.user_attrs}
    enqueue(study, planned_params(frozen), {**attrs, SEEDS: kept, RACE: race})
