"""The bridge from Ray Tune to the Optuna study: a Tune searcher that asks the study for
each trial and tells it what the trial measured, and the progress line.

It is written against Tune's public ``Searcher`` interface over Optuna's ``ask``/``tell``:
the study (with the sampler of the spec) is the only state, so a run resumes by
continuing the study with a fresh Tuner, and Tune's searcher checkpoints are not used.
What a trial ends as (complete, pruned by ASHA, failed with its reason, waiting for the
baseline) and the attributes it leaves in the study are decided here.
"""

from __future__ import annotations

import json
import logging
import os
from typing import Any, Callable, Sequence

import optuna
from optuna.trial import TrialState

from ..runs.artifacts import attach_trial_artifacts, pictures_from_result
from ..runs.rank import DeltaMTerms, delta_m
from ..runs.record import Cost, Failure, Plan, TrialRecord, baseline_metrics, study_records
from ..runs.study import ask
from ..space.spaces import ROLE_SINGLE_TASK
from ..text import console
from ..train.tasks import Task
from .trial import ORIGIN_INTERNAL, ORIGIN_USER, val_from_result

log = logging.getLogger("share_search")

PRUNED_REASON = "stopped early by the ASHA scheduler"
WORKER_DIED = "the trial's worker process died (see run.log)"
STATE_COUNTS = {TrialState.COMPLETE: "complete", TrialState.PRUNED: "pruned", TrialState.FAIL: "failed"}


def trial_record(number: int, result: dict, state: TrialState, plan: dict | None, tasks: Sequence[Task], checkpoint: str | None) -> TrialRecord:
    """A told trial as the study keeps it, from its last result: the one ``TrialRecord``
    every reader of the study gets back (``TrialRecord.to_user_attrs`` names the attributes)."""
    failed = state == TrialState.FAIL
    reason = result.get("fail_reason") or (PRUNED_REASON if state == TrialState.PRUNED else None)
    return TrialRecord(
        number=number,
        state=state.name,
        plan=Plan.from_dict(plan) if plan else Plan(),
        family=result.get("family"),
        arch=result.get("arch"),
        val=None if failed else val_from_result(tasks, result),
        delta_m=result.get("delta_m"),
        cost=Cost(result.get("params"), result.get("macs"), result.get("time_s")),
        best_epoch=result.get("best_epoch"),
        best_epochs=json.loads(result["best_epochs_json"]) if "best_epochs_json" in result else None,
        history=json.loads(result["history_json"]) if "history_json" in result else None,
        details=json.loads(result["details_json"]) if "details_json" in result else None,
        node=result.get("node"),
        checkpoint=checkpoint if state == TrialState.COMPLETE else None,
        failure=None if reason is None else Failure(
            reason,
            result.get("fail_traceback") if failed else None,
            (result.get("fail_origin") or ORIGIN_INTERNAL) if failed else None,
        ),
    )


def trial_attrs(record: TrialRecord, tasks: Sequence[Task]) -> dict[str, Any]:
    """The user attributes a told trial is given: its record's, and ``fail_reason`` always
    (null when it did not fail), since it replaces the ``interrupted`` reason a trial is
    asked with (``study.ask``)."""
    return {"fail_reason": None, **record.to_user_attrs(tasks)}


def error_result(error: BaseException | str | None) -> dict[str, Any]:
    """A trial Tune reports as errored (its trainable reports every exception of its own, so
    this is a worker that died, e.g. killed for memory): its reason and full text."""
    text = str(error or "").strip()
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    reason = lines[-1][:2000] if lines else WORKER_DIED
    return {"fail_reason": reason, "fail_traceback": text or None, "fail_origin": ORIGIN_USER}


def make_searcher(**kwargs):
    """A ``StudySearcher`` (the class is made here: Ray is imported only when a search runs)."""
    from ray.tune.search import Searcher

    class StudySearcher(Searcher):
        """Asks the study for each Tune trial, tells it each outcome with its attributes.

        A trial stopped by the scheduler is PRUNED, a failed one FAIL with its reason,
        traceback and origin; Δm is computed from the baseline, and a trial that ends before
        the baseline is known waits to be told.
        """

        def __init__(self, *, study_name: str, storage, sampler, space: Callable, tasks: Sequence[Task], objectives: list[str],
                     modes: list[str], baseline: dict[str, dict[str, float]] | None, delta_m_over: DeltaMTerms, run_dir: str):
            super().__init__(metric=objectives[0] if len(objectives) == 1 else objectives, mode=modes[0] if len(modes) == 1 else modes)
            self.study = optuna.load_study(study_name=study_name, storage=storage, sampler=sampler, pruner=optuna.pruners.NopPruner())
            self.space = space
            self.tasks = tuple(tasks)
            self.delta_m_over = delta_m_over  # what Δm averages (search.delta_m)
            self.run_dir = run_dir
            self.objectives = objectives
            self.baseline = baseline
            self.needs_baseline = "delta_m" in objectives
            self.asked: dict[str, optuna.Trial] = {}
            self.told: set[str] = set()
            self.plans: dict[str, dict] = {}
            self.checkpoints: dict[str, str] = {}
            self.waiting: dict[str, dict] = {}
            self.errored: set[str] = set()
            self.counts = {"complete": 0, "pruned": 0, "failed": 0}
            self.best: float | None = None

        def suggest(self, trial_id: str) -> dict | None:
            trial = ask(self.study)  # queued trials (references, grid points, retries) first
            self.asked[trial_id] = trial
            sampled = self.space(trial)
            self.plans[trial_id] = sampled["plan"]  # the recipe, for attributes and artifacts
            return {**trial.params, **sampled}

        def on_trial_result(self, trial_id: str, result: dict) -> None:
            """Intermediate values for single-objective studies (Optuna keeps none for several)."""
            if trial_id in self.told or trial_id not in self.asked or not isinstance(self.metric, str):
                return
            if result.get(self.metric) is not None and not result.get("final"):
                self.asked[trial_id].report(result[self.metric], result["training_iteration"])

        def on_trial_complete(self, trial_id: str, result: dict | None = None, error: bool = False) -> None:
            if trial_id in self.told or trial_id not in self.asked:
                return
            if error or not result:
                self.errored.add(trial_id)  # the error arrives with the phase's results (record_errors)
                return
            if result.get("failed"):
                self._tell(trial_id, result, TrialState.FAIL)
            elif not result.get("final"):
                self._tell(trial_id, result, TrialState.PRUNED)
            elif self.needs_baseline and self.baseline is None:
                trial = self.asked[trial_id]
                if trial.user_attrs.get("role") == ROLE_SINGLE_TASK:
                    this = TrialRecord(trial.number, "COMPLETE", ROLE_SINGLE_TASK, val=val_from_result(self.tasks, result))
                    self.baseline = baseline_metrics([*study_records(self.study), this], self.tasks)
                    self._tell(trial_id, result, TrialState.COMPLETE)
                    for waiting_id, waiting_result in list(self.waiting.items()):
                        self._tell(waiting_id, waiting_result, TrialState.COMPLETE)
                    self.waiting.clear()
                else:
                    self.waiting[trial_id] = result
            else:
                self._tell(trial_id, result, TrialState.COMPLETE)

        def record_checkpoint(self, trial_id: str, path: str) -> None:
            """Where Tune stored a trial's checkpoint (from the ``on_checkpoint`` callback)."""
            self.checkpoints[trial_id] = os.path.relpath(path, self.run_dir)

        def record_errors(self, results) -> None:
            """Errored trials told FAIL with the error Tune's ``ResultGrid`` holds for each."""
            by_number = {self.asked[trial_id].number: trial_id for trial_id in self.errored}
            for result in results:
                trial_id = by_number.get((result.config or {}).get("optuna_trial"))
                if trial_id is not None and result.error is not None:
                    self.errored.discard(trial_id)
                    self._tell(trial_id, error_result(result.error), TrialState.FAIL)

        def finish(self) -> None:
            """End of phase: trials still waiting for a baseline that never came fail."""
            for trial_id in list(self.errored):
                self._tell(trial_id, error_result(None), TrialState.FAIL)
            self.errored.clear()
            for trial_id, result in list(self.waiting.items()):
                reason = "the single-task baseline did not finish, so Δm is undefined"
                self._tell(trial_id, {**result, "fail_reason": reason, "fail_origin": ORIGIN_USER}, TrialState.FAIL)
            self.waiting.clear()

        def _tell(self, trial_id: str, result: dict, state: TrialState) -> None:
            trial = self.asked[trial_id]
            values = None
            if state == TrialState.COMPLETE:
                if self.needs_baseline:
                    val = val_from_result(self.tasks, result)
                    result = {**result, "delta_m": delta_m(val, self.baseline, self.delta_m_over.higher_is_better)}
                values = [float(result[name]) for name in self.objectives]
            record = trial_record(trial.number, result, state, self.plans.get(trial_id), self.tasks, self.checkpoints.get(trial_id))
            attrs = trial_attrs(record, self.tasks)
            for key, value in attrs.items():
                trial.set_user_attr(key, value)
            if trial_id in self.plans:
                attach_trial_artifacts(
                    self.study, trial, os.path.join(self.run_dir, "artifacts"), self.plans[trial_id]["arch"], record.details, pictures_from_result(result)
                )
            try:
                self.study.tell(trial, values, state=state)
            except Exception as exc:  # e.g. a NaN objective: record the trial as failed
                log.warning("trial %s could not be told as %s (%s); marking it failed", trial.number, state.name, exc)
                attrs.update(fail_reason=f"objective could not be recorded: {exc}", fail_origin=ORIGIN_USER, checkpoint=None)
                trial.set_user_attr("fail_reason", attrs["fail_reason"])
                trial.set_user_attr("fail_origin", ORIGIN_USER)
                self.study.tell(trial, None, state=TrialState.FAIL)
                state = TrialState.FAIL
            _log_outcome(trial.number, trial.user_attrs.get("role"), state, attrs, self.tasks)
            self.told.add(trial_id)
            self.counts[STATE_COUNTS[state]] += 1
            if state == TrialState.COMPLETE and "delta_m" in result:
                dm = float(result["delta_m"])
                self.best = dm if self.best is None else max(self.best, dm)

    return StudySearcher(**kwargs)


def _log_outcome(number: int, role: str | None, state: TrialState, attrs: dict, tasks: Sequence[Task]) -> None:
    """One run.log line per finished trial: what it trained and how it ended."""
    what = f"trial {number}" + (f" ({role})" if role else "") + f": {attrs.get('arch') or attrs.get('family') or 'no architecture'}"
    if state == TrialState.FAIL:
        log.warning("%s failed (origin: %s): %s", what, attrs.get("fail_origin"), attrs.get("fail_reason") or "no reason recorded")
        if attrs.get("fail_traceback"):
            log.warning("trial %d traceback:\n%s", number, attrs["fail_traceback"].rstrip())
        return
    val = attrs.get("val") or {}
    scores = ", ".join(f"{t.name} {t.metric} {val[t.name][t.metric]:.4f}" for t in tasks if val.get(t.name, {}).get(t.metric) is not None)
    dm = f", Δm {attrs['delta_m']:+.2f}%" if attrs.get("delta_m") is not None else ""
    if state == TrialState.PRUNED:
        log.info("%s pruned (%s) at %s%s", what, attrs.get("fail_reason"), scores or "no metrics", dm)
    else:
        log.info("%s complete in %.2f s: %s%s", what, attrs.get("time_s") or 0.0, scores, dm)


def make_progress_callback(searcher, total: int, show: bool):
    from ray import tune

    class Progress(tune.Callback):
        """One rich progress line instead of Ray's tables; also hands checkpoints to the searcher."""

        def __init__(self):
            self.running = 0
            self.progress = None

        def __getstate__(self):  # Tune saves its callbacks; the live bar stays behind
            return {**self.__dict__, "progress": None}

        def setup(self, **info):
            if show and self.progress is None:
                from rich.progress import BarColumn, MofNCompleteColumn, Progress as Bar, TextColumn, TimeElapsedColumn, TimeRemainingColumn

                self.progress = Bar(
                    TextColumn("trials"), BarColumn(), MofNCompleteColumn(), TextColumn("{task.fields[status]}"),
                    TimeElapsedColumn(), TextColumn("left"), TimeRemainingColumn(), transient=False,
                    console=console(),  # piped: wide enough that the times are not cut to "0:00:…"
                )
                self.task = self.progress.add_task("search", total=total, status="")
                self.progress.start()

        def _update(self, advance: int = 0) -> None:
            if self.progress is None:
                return
            c = searcher.counts
            best = "-" if searcher.best is None else f"{searcher.best:+.2f}"
            status = f"running {self.running}  failed {c['failed'] + len(searcher.errored)}  pruned {c['pruned']}  best Δm {best}"
            self.progress.update(self.task, advance=advance, status=status)

        def on_trial_start(self, iteration, trials, trial, **info):
            self.running += 1
            self._update()

        def on_trial_complete(self, iteration, trials, trial, **info):
            self.running -= 1
            self._update(1)

        def on_trial_error(self, iteration, trials, trial, **info):
            self.running -= 1  # the error itself is told from the phase's results
            self._update(1)

        def on_checkpoint(self, iteration, trials, trial, checkpoint, **info):
            searcher.record_checkpoint(trial.trial_id, checkpoint.path)

        def on_experiment_end(self, trials, **info):
            if self.progress is not None:
                self.progress.stop()

    return Progress()
