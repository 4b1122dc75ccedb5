"""The bridge from Ray Tune to the Optuna study: a searcher that samples each trial from
the study and tells it what the trial measured, and the progress line.

Ray Tune's ``OptunaSearch`` is extended, not replaced: its ask/suggest stays; what a trial
ends as (complete, pruned by ASHA, failed with its reason, waiting for the baseline) and
the attributes it leaves in the study are decided here.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Sequence

from optuna.trial import TrialState

from .artifacts import attach_trial_artifacts
from .rank import delta_m
from .record import TrialRecord, baseline_metrics, study_records
from .spaces import ROLE_SINGLE_TASK
from .study import json_safe
from .tasks import Task
from .text import console
from .trial import primary_metrics, val_from_result

log = logging.getLogger("share_search")


def make_searcher_class():
    from ray.tune.search.optuna import OptunaSearch

    class StudySearch(OptunaSearch):
        """OptunaSearch that writes what a trial measured before telling Optuna.

        It maps a trial stopped by the scheduler to PRUNED (stock: COMPLETE with a partial
        value), a failed trial to FAIL with its reason, and computes Δm from the baseline;
        a trial that ends before the baseline is known waits to be told.
        """

        def __init__(self, *, tasks: Sequence[Task], objectives: list[str], baseline: dict[str, float] | None, artifact_dir: str, **kwargs):
            super().__init__(**kwargs)
            self.tasks = tuple(tasks)
            self.higher_is_better = {t.name: t.higher_is_better for t in self.tasks}
            self.artifact_dir = artifact_dir
            self.plans: dict[str, dict] = {}
            self.objectives = objectives
            self.baseline = baseline
            self.needs_baseline = "delta_m" in objectives
            self.waiting: dict[str, dict] = {}
            self.errored: set[str] = set()
            self.counts = {"complete": 0, "pruned": 0, "failed": 0}
            self.best: float | None = None

        def on_trial_result(self, trial_id: str, result: dict) -> None:
            if isinstance(self.metric, str) and result.get(self.metric) is not None and not result.get("final"):
                super().on_trial_result(trial_id, result)

        def on_trial_complete(self, trial_id: str, result: dict | None = None, error: bool = False) -> None:
            if trial_id in self._completed_trials or trial_id not in self._ot_trials:
                return
            if error or not result:
                self.errored.add(trial_id)  # the reason arrives through record_error
                return
            if result.get("failed"):
                self._tell(trial_id, result, TrialState.FAIL)
            elif not result.get("final"):
                self._tell(trial_id, result, TrialState.PRUNED)
            elif self.needs_baseline and self.baseline is None:
                role = self._ot_trials[trial_id].user_attrs.get("role")
                if role == ROLE_SINGLE_TASK:
                    this = TrialRecord(self._ot_trials[trial_id].number, "COMPLETE", role, val=val_from_result(self.tasks, result))
                    self.baseline = baseline_metrics([*study_records(self._ot_study), this], self.tasks)
                    self._tell(trial_id, result, TrialState.COMPLETE)
                    for waiting_id, waiting_result in list(self.waiting.items()):
                        self._tell(waiting_id, waiting_result, TrialState.COMPLETE)
                    self.waiting.clear()
                else:
                    self.waiting[trial_id] = result
            else:
                self._tell(trial_id, result, TrialState.COMPLETE)

        def record_error(self, trial_id: str, reason: str) -> None:
            if trial_id in self.errored:
                self.errored.discard(trial_id)
                self._tell(trial_id, {"fail_reason": reason}, TrialState.FAIL)

        def finish(self) -> None:
            """End of phase: trials still waiting for a baseline that never came fail."""
            for trial_id in list(self.errored):
                self.record_error(trial_id, "the trial's worker process died (see run.log)")
            for trial_id, result in list(self.waiting.items()):
                self._tell(trial_id, {**result, "fail_reason": "the single-task baseline did not finish, so Δm is undefined"}, TrialState.FAIL)
            self.waiting.clear()

        def _tell(self, trial_id: str, result: dict, state: TrialState) -> None:
            ot = self._ot_trials[trial_id]
            values = None
            if state == TrialState.COMPLETE:
                if self.needs_baseline:
                    val = val_from_result(self.tasks, result)
                    result = {**result, "delta_m": delta_m(primary_metrics(self.tasks, val), self.baseline, self.higher_is_better)}
                values = [float(result[name]) for name in self.objectives]
            attrs = {
                "family": result.get("family"),
                "arch": result.get("arch"),
                "arch_json": json.dumps(self.plans[trial_id]["arch"]) if trial_id in self.plans else None,
                "params": result.get("params"),
                "macs": result.get("macs"),
                "time_s": result.get("time_s"),
                "best_epoch": result.get("best_epoch"),
                "val": val_from_result(self.tasks, result) if state != TrialState.FAIL else None,
                "delta_m": result.get("delta_m"),
                "fail_reason": result.get("fail_reason") or ("stopped early by the ASHA scheduler" if state == TrialState.PRUNED else None),
                "node": result.get("node"),
                "history": json.loads(result["history_json"]) if "history_json" in result else None,
                "details": json.loads(result["details_json"]) if "details_json" in result else None,
            }
            if attrs["val"]:  # flat primary metrics: sortable columns in optuna-dashboard's trial table
                attrs.update({f"val.{t.name}": attrs["val"][t.name].get(t.metric) for t in self.tasks})
            for key, value in attrs.items():
                if value is not None:
                    ot.set_user_attr(key, json_safe(value))
            if trial_id in self.plans:
                attach_trial_artifacts(self._ot_study, ot, self.artifact_dir, self.plans[trial_id]["arch"], attrs["details"])
            try:
                self._ot_study.tell(ot, values, state=state)
            except Exception as exc:  # e.g. a NaN objective: record the trial as failed
                log.warning("trial %s could not be told as %s (%s); marking it failed", ot.number, state.name, exc)
                attrs["fail_reason"] = f"objective could not be recorded: {exc}"
                ot.set_user_attr("fail_reason", attrs["fail_reason"])
                self._ot_study.tell(ot, None, state=TrialState.FAIL)
                state = TrialState.FAIL
            _log_outcome(ot.number, ot.user_attrs.get("role"), state, attrs, self.tasks)
            self._completed_trials.add(trial_id)
            self.counts[{TrialState.COMPLETE: "complete", TrialState.PRUNED: "pruned", TrialState.FAIL: "failed"}[state]] += 1
            if state == TrialState.COMPLETE and "delta_m" in result:
                dm = float(result["delta_m"])
                self.best = dm if self.best is None else max(self.best, dm)

        def suggest(self, trial_id: str):
            config = super().suggest(trial_id)
            if config is not None:
                self.plans[trial_id] = config["plan"]  # the recipe, for attributes and artifacts
            return config

    return StudySearch


def _log_outcome(number: int, role: str | None, state: TrialState, attrs: dict, tasks: Sequence[Task]) -> None:
    """One run.log line per finished trial: what it trained and how it ended."""
    what = f"trial {number}" + (f" ({role})" if role else "") + f": {attrs.get('arch') or attrs.get('family') or 'no architecture'}"
    if state == TrialState.FAIL:
        log.warning("%s failed: %s", what, attrs.get("fail_reason") or "no reason recorded")
        return
    val = attrs.get("val") or {}
    scores = ", ".join(f"{t.name} {t.metric} {val[t.name][t.metric]:.4f}" for t in tasks if val.get(t.name, {}).get(t.metric) is not None)
    dm = f", Δm {attrs['delta_m']:+.2f}%" if attrs.get("delta_m") is not None else ""
    if state == TrialState.PRUNED:
        log.info("%s pruned (%s) at %s%s", what, attrs.get("fail_reason"), scores or "no metrics", dm)
    else:
        log.info("%s complete in %.2f s: %s%s", what, attrs.get("time_s") or 0.0, scores, dm)


def _error_reason(trial) -> str:
    """The last line of a failed trial's error text (e.g. why its worker died).

    Tune writes it to the trial's local folder first and syncs it to storage later, so the
    local file is read; ``trial.get_error()`` (storage) is still empty at this point.
    """
    text = ""
    path = getattr(trial, "error_file", None)
    if path and os.path.isfile(path):
        text = Path(path).read_text(errors="replace")
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return (lines[-1] if lines else "the trial failed")[:2000]


def make_progress_callback(searcher, total: int, show: bool):
    from ray import tune

    class Progress(tune.Callback):
        """One rich progress line instead of Ray's tables; also hands errors to the searcher."""

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
            status = f"running {self.running}  failed {c['failed']}  pruned {c['pruned']}  best Δm {best}"
            self.progress.update(self.task, advance=advance, status=status)

        def on_trial_start(self, iteration, trials, trial, **info):
            self.running += 1
            self._update()

        def on_trial_complete(self, iteration, trials, trial, **info):
            self.running -= 1
            self._update(1)

        def on_trial_error(self, iteration, trials, trial, **info):
            self.running -= 1
            searcher.record_error(trial.trial_id, _error_reason(trial))
            self._update(1)

        def on_experiment_end(self, trials, **info):
            if self.progress is not None:
                self.progress.stop()

    return Progress()
