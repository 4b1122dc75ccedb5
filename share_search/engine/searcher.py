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
import math
import os
from dataclasses import replace
from typing import Any, Callable, Sequence

import optuna
from optuna.trial import TrialState

from ..arch import config_from_dict
from ..runs.artifacts import attach_trial_artifacts, pictures_from_result
from ..runs.rank import DeltaMTerms, delta_m
from ..runs.record import DUPLICATE_OF, Cost, Failure, Plan, SeedResult, TrialRecord, baselines_by_repeat, seed_delta_m, seed_means, seed_of_repeat, seeds_from_attr, study_records
from ..runs.study import SEEDS, ask, completed_seed_attrs, is_queued, searched_twin
from ..space.spaces import ROLE_SINGLE_TASK
from ..text import console
from ..train.tasks import Task
from .trial import ORIGIN_INTERNAL, ORIGIN_USER, val_from_result

log = logging.getLogger("share_search")

PRUNED_REASON = "stopped early by the ASHA scheduler"
WORKER_DIED = "the trial's worker process died (see run.log)"
STATE_COUNTS = {TrialState.COMPLETE: "complete", TrialState.PRUNED: "pruned", TrialState.FAIL: "failed"}
DUPLICATE_LIMIT = 50  # consecutive re-proposals (at least; search.trials when larger) after which a phase ends: the sampler found nothing new
# what a re-proposal copies from the trial it repeats, so the dashboard shows what it stands for (its weights, history and cost stay there)
DUPLICATE_COPIES = ("family", "arch", "arch_json", "train", "params", "macs", "val", "delta_m", "n_seeds", "delta_m.se")


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


def seed_result(repeat: int, seed: int, state: TrialState, result: dict, tasks: Sequence[Task], checkpoint: str | None) -> SeedResult:
    """One ended seed (one Ray trial) from its last result."""
    failed = state == TrialState.FAIL
    return SeedResult(
        repeat=repeat,
        seed=seed,
        state=state.name,
        val=None if failed else val_from_result(tasks, result),
        delta_m=result.get("delta_m"),
        best_epoch=result.get("best_epoch"),
        best_epochs=json.loads(result["best_epochs_json"]) if "best_epochs_json" in result else None,
        time_s=result.get("time_s"),
        started_at=result.get("started_at"),
        ended_at=result.get("ended_at"),
        node=result.get("node"),
        checkpoint=checkpoint if state == TrialState.COMPLETE else None,
        fail_reason=result.get("fail_reason") if failed else None,
        params=result.get("params"),
        macs=result.get("macs"),
        history=json.loads(result["history_json"]) if "history_json" in result else None,
        details=json.loads(result["details_json"]) if "details_json" in result else None,
    )


def combined_record(number: int, plan: dict, seeds: Sequence[SeedResult], tasks: Sequence[Task], failure: Failure | None = None) -> TrialRecord:
    """An architecture's record from its seeds (``search.repeats > 1``): every metric and Δm
    the mean over seeds (Δm: of the per-seed, paired values the seeds carry), time summed
    (the compute it took); epochs, history, node and checkpoint are the first seed's (repeat
    0, the spec's seed), whose weights are the ones exported. With ``failure``, a FAIL that
    keeps what each seed recorded."""
    seeds = sorted(seeds, key=lambda s: s.repeat)
    first = seeds[0]
    arch = config_from_dict(plan["arch"])
    params = next((s.params for s in seeds if s.params is not None), None)
    macs = next((s.macs for s in seeds if s.macs is not None), None)
    if failure is not None:
        return TrialRecord(number, TrialState.FAIL.name, plan=Plan.from_dict(plan), family=arch.family, arch=arch.summary(),
                           cost=Cost(params, macs, None), failure=failure, seeds=seeds)
    return TrialRecord(
        number, TrialState.COMPLETE.name, plan=Plan.from_dict(plan), family=arch.family, arch=arch.summary(), val=seed_means(seeds),
        delta_m=seed_delta_m(seeds),
        cost=Cost(params, macs, math.fsum(s.time_s or 0.0 for s in seeds)),
        best_epoch=first.best_epoch, best_epochs=first.best_epochs, history=first.history, details=first.details,
        node=first.node, checkpoint=first.checkpoint, seeds=seeds,
    )


def seed_failure(seed: SeedResult, result: dict, repeats: int) -> Failure:
    """Why an architecture failed: its first failed seed's reason, traceback and origin."""
    reason = f"seed {seed.seed} (repeat {seed.repeat + 1} of {repeats}) failed: {result.get('fail_reason') or WORKER_DIED}"
    return Failure(reason[:2000], result.get("fail_traceback"), result.get("fail_origin") or ORIGIN_INTERNAL)


def objective_value(record: TrialRecord, name: str) -> float:
    """An objective's value (``study.objective_names``) from a record: Δm, a cost, or a task's metric."""
    if name == "delta_m":
        return float(record.delta_m)
    if name in ("params", "macs"):
        return float(getattr(record.cost, name))
    task, metric = name.split(".", 1)
    return record.value(task, metric)


def make_searcher(**kwargs):
    """A ``StudySearcher`` (the class is made here: Ray is imported only when a search runs)."""
    from ray.tune.search import Searcher

    class StudySearcher(Searcher):
        """Asks the study for each architecture, hands out one Tune trial per seed of it, and
        tells the study each architecture's outcome with its attributes once every seed ended.

        ``repeats`` seeds per architecture (``search.repeats``): one Optuna trial, ``repeats``
        Tune trials (seed ``seed + r``), handed out one after another so that they train in
        parallel on free workers. The Optuna trial is told when its last seed ends: COMPLETE
        with the mean over seeds when every seed completed, FAIL (with the first failed seed's
        reason) when any failed. Seeds that ended are written to the trial as they end
        (``seeds``), so a resumed run keeps those that completed (``study.queue_retries``).

        A Tune trial stopped by the scheduler is PRUNED (one seed only: the spec refuses ASHA
        with repeats), a failed one FAIL with its reason, traceback and origin; Δm is computed
        from the baseline, each seed against the baseline's seed of the same repeat, and an
        architecture that ends before the baseline is known waits to be told.

        A sampled trial whose values equal those of a searched trial that ended COMPLETE or
        PRUNED, or is still training in this phase (``runs.study.searched_twin``), is not
        trained: it is told that trial's outcome, at once or when the twin ends (trained after
        all if the twin fails), takes no Tune trial and does not count against
        ``search.trials``; so what is trained depends on the order of proposals, not on which
        trial finished first. Queued trials are always trained. After ``duplicate_limit`` such
        re-proposals in a row the phase ends (``Searcher.FINISHED``): the sampler finds
        nothing new, e.g. a space smaller than the budget.
        """

        def __init__(self, *, study_name: str, storage, sampler, space: Callable, tasks: Sequence[Task], objectives: list[str],
                     modes: list[str], baselines: dict[int, dict[str, dict[str, float]]] | None, delta_m_over: DeltaMTerms, run_dir: str,
                     repeats: int = 1, n_trials: int | None = None, duplicate_limit: int = DUPLICATE_LIMIT):
            super().__init__(metric=objectives[0] if len(objectives) == 1 else objectives, mode=modes[0] if len(modes) == 1 else modes)
            self.study = optuna.load_study(study_name=study_name, storage=storage, sampler=sampler, pruner=optuna.pruners.NopPruner())
            self.space = space
            self.tasks = tuple(tasks)
            self.delta_m_over = delta_m_over  # what Δm averages (search.delta_m)
            self.run_dir = run_dir
            self.objectives = objectives
            self.baselines = baselines  # repeat -> the single-task baseline's metrics of that seed
            self.needs_baseline = "delta_m" in objectives
            self.repeats = repeats
            self.n_trials = n_trials  # Optuna trials this phase takes, for architectures whose seeds were all kept
            self.trials: dict[int, optuna.Trial] = {}  # Optuna trial number -> the asked trial
            self.plans: dict[int, dict] = {}  # number -> the recipe (the first seed's)
            self.tune_ids: dict[str, tuple[int, int]] = {}  # Tune trial id -> (number, repeat)
            self.pending: list[tuple[int, int]] = []  # seeds asked for and not handed out yet
            self.raw: dict[int, dict[int, tuple[TrialState, dict]]] = {}  # number -> repeat -> how it ended, its last result
            self.ended: dict[int, dict[int, SeedResult]] = {}  # number -> repeat -> seed (kept ones included)
            self.checkpoints: dict[str, str] = {}
            self.seed_done: set[str] = set()
            self.told: set[int] = set()
            self.waiting: set[int] = set()
            self.errored: set[str] = set()
            self.counts = {"complete": 0, "pruned": 0, "failed": 0, "duplicates": 0, "exhausted": 0}
            self.best: float | None = None
            self.duplicate_limit = duplicate_limit
            self.duplicates_in_a_row = 0
            self.deferred: dict[int, list[tuple[optuna.Trial, dict]]] = {}  # twin still training -> re-proposals of it (trial, plan)

        # ------------------------------------------------------------------ asking
        def suggest(self, trial_id: str) -> dict | None:
            while not self.pending:
                if self.duplicates_in_a_row >= self.duplicate_limit:
                    # re-proposals wait for a twin still in training: it may fail, and one of them train instead
                    return None if any(self._training(n) for n in self.deferred) else self._exhausted()
                self._ask_one()
            number, repeat = self.pending.pop(0)
            self.tune_ids[trial_id] = (number, repeat)
            plan = self.plans[number]
            seeded = {**plan, "train": {**plan["train"], "seed": self._seed(number, repeat)}}
            return {**self.trials[number].params, "plan": seeded, "optuna_trial": number, "repeat": repeat}

        def _training(self, number: int) -> bool:
            """Whether a Tune trial of this architecture is still to run or running; one that
            ended but waits for the baseline, or errored (told after the phase), is not."""
            return any(n == number for n, _ in self.pending) or any(
                n == number and tid not in self.seed_done and tid not in self.errored for tid, (n, _) in self.tune_ids.items())

        def _seed(self, number: int, repeat: int) -> int:
            return seed_of_repeat(self.plans[number]["train"]["seed"], repeat)

        def _ask_one(self) -> None:
            """Ask the study for the next architecture (queued ones first) and queue its
            seeds that are not kept from an interrupted run; one with every seed kept is told."""
            trial = ask(self.study)
            sampled = self.space(trial)
            twin = None if is_queued(trial) else searched_twin(self.study, trial.params, training=self.trials.keys() - self.told)
            if twin is None:
                self.duplicates_in_a_row = 0
                self._train(trial, sampled["plan"])
                return
            self.duplicates_in_a_row += 1
            trial.set_user_attr(DUPLICATE_OF, twin.number)  # off the board and not retried on --resume, from now on
            if twin.state == TrialState.RUNNING:  # told when its twin ends, so the outcome does not depend on timing
                self.deferred.setdefault(twin.number, []).append((trial, sampled["plan"]))
                log.info("trial %d: re-proposes trial %d, still training: told its result when it ends", trial.number, twin.number)
            else:
                self._tell_duplicate(trial, twin, sampled["plan"]["arch"])

        def _train(self, trial: optuna.Trial, plan: dict, first: bool = False) -> None:
            """Queue the seeds of an asked architecture (``first``: ahead of those queued already)."""
            number = trial.number
            self.trials[number] = trial
            self.plans[number] = plan  # the recipe, for attributes and artifacts
            kept = seeds_from_attr(trial.user_attrs.get(SEEDS)) or []
            self.ended[number] = {s.repeat: s for s in kept if s.state == "COMPLETE" and s.repeat < self.repeats}
            self.raw[number] = {}
            missing = [(number, r) for r in range(self.repeats) if r not in self.ended[number]]
            self.pending = missing + self.pending if first else self.pending + missing
            if not missing:
                self._all_ended(number)

        def _tell_duplicate(self, trial: optuna.Trial, twin: optuna.trial.FrozenTrial, arch: dict) -> None:
            """A sampled trial that re-proposes a trained one is not trained again (Optuna's FAQ,
            "How can I ignore duplicated samples?"): it is told the earlier trial's outcome at
            once, COMPLETE with its values (the mean over seeds with ``repeats``) or PRUNED
            after its intermediate values, and records ``duplicate_of``; the dashboard shows
            its drawing and the earlier trial's metrics."""
            for key, value in twin.user_attrs.items():
                if key in DUPLICATE_COPIES or key.startswith("val."):  # val.<task>, val.<task>.se: the dashboard's columns
                    trial.set_user_attr(key, value)
            attach_trial_artifacts(self.study, trial, os.path.join(self.run_dir, "artifacts"), arch, twin.user_attrs.get("details"))
            trial.set_user_attr("fail_reason", None)
            if twin.state == TrialState.PRUNED and len(self.study.directions) == 1:
                for step, value in sorted(twin.intermediate_values.items()):
                    trial.report(value, step)
            self.study.tell(trial, twin.values if twin.state == TrialState.COMPLETE else None, state=twin.state)
            self.counts["duplicates"] += 1
            log.info("trial %d: re-proposes trial %d (%s), not trained: told its result (%s)", trial.number, twin.number,
                     twin.user_attrs.get("arch") or "no architecture", twin.state.name.lower())

        def _settle_deferred(self, number: int) -> None:
            """Trial ``number`` was told: its re-proposals asked while it trained are told its
            outcome, or trained when it failed, as they would have been had it ended before
            they were asked (``searched_twin``)."""
            if number not in self.deferred:
                return
            twin = self.study.get_trials(deepcopy=False)[number]  # a study's trials are numbered from 0
            waiting = self.deferred.pop(number)
            if twin.state == TrialState.FAIL:  # the first re-proposal trains; the others are its re-proposals now
                (trial, plan), rest = waiting[0], waiting[1:]
                log.info("trial %d: re-proposes trial %d, which failed: trained", trial.number, number)
                trial.set_user_attr(DUPLICATE_OF, None)
                self._train(trial, plan, first=True)
                for other, _ in rest:
                    other.set_user_attr(DUPLICATE_OF, trial.number)
                if rest:
                    self.deferred[trial.number] = rest
                return
            for trial, plan in waiting:
                self._tell_duplicate(trial, twin, plan["arch"])

        def _exhausted(self) -> str:
            """End the phase: the sampler proposed only architectures already trained, ``duplicate_limit`` in a row."""
            if not self.counts["exhausted"]:
                self.counts["exhausted"] = 1
                log.warning("search ended early: the sampler proposed only architectures already trained (%d in a row); "
                            "the space may hold fewer architectures than search.trials", self.duplicates_in_a_row)
            return Searcher.FINISHED

        def ask_kept(self) -> None:
            """End of phase: architectures at the head of the queue whose every seed was kept
            (no Tune trial was needed for them) are asked and told within the phase's count."""
            while self.n_trials is not None and len(self.trials) < self.n_trials:
                waiting = self.study.get_trials(deepcopy=False, states=(TrialState.WAITING,))
                head = min(waiting, key=lambda t: t.number, default=None)
                if head is None or len({s["repeat"] for s in completed_seed_attrs(head) if s.get("repeat", self.repeats) < self.repeats}) < self.repeats:
                    return
                self._ask_one()

        # ------------------------------------------------------------------ results
        def on_trial_result(self, trial_id: str, result: dict) -> None:
            """Intermediate values for single-objective studies (Optuna keeps none for several),
            from the first seed only (its curve is the exported network's)."""
            number, repeat = self.tune_ids.get(trial_id, (None, None))
            if number is None or number in self.told or repeat != 0 or not isinstance(self.metric, str):
                return
            if result.get(self.metric) is not None and not result.get("final"):
                self.trials[number].report(result[self.metric], result["training_iteration"])

        def on_trial_complete(self, trial_id: str, result: dict | None = None, error: bool = False) -> None:
            if trial_id in self.seed_done or trial_id not in self.tune_ids:
                return
            if error or not result:
                self.errored.add(trial_id)  # the error arrives with the phase's results (record_errors)
                return
            if result.get("failed"):
                self._seed_ended(trial_id, result, TrialState.FAIL)
            elif not result.get("final"):
                self._seed_ended(trial_id, result, TrialState.PRUNED)
            else:
                self._seed_ended(trial_id, result, TrialState.COMPLETE)

        def record_checkpoint(self, trial_id: str, path: str) -> None:
            """Where Tune stored a trial's checkpoint (from the ``on_checkpoint`` callback)."""
            self.checkpoints[trial_id] = os.path.relpath(path, self.run_dir)

        def record_errors(self, results) -> None:
            """Errored trials told FAIL with the error Tune's ``ResultGrid`` holds for each."""
            by_seed = {self.tune_ids[trial_id]: trial_id for trial_id in self.errored}
            for result in results:
                config = result.config or {}
                trial_id = by_seed.get((config.get("optuna_trial"), config.get("repeat", 0)))
                if trial_id is not None and result.error is not None:
                    self.errored.discard(trial_id)
                    self._seed_ended(trial_id, error_result(result.error), TrialState.FAIL)

        def finish(self) -> None:
            """End of phase: trials still waiting for a baseline that never came fail."""
            for trial_id in list(self.errored):
                self._seed_ended(trial_id, error_result(None), TrialState.FAIL)
            self.errored.clear()
            for number in sorted(self.waiting):
                reason = "the single-task baseline did not finish, so Δm is undefined"
                self._tell_failed_waiting(number, {"fail_reason": reason, "fail_origin": ORIGIN_USER})
            self.waiting.clear()
            # a re-proposal of a failed trial that the phase had no Tune trial left for: trained on --resume, as an
            # interrupted trial (``ask`` gave it that reason); its own re-proposals are not retried: they wait for it no more
            untrained = [self.trials[n] for n in sorted({n for n, _ in self.pending})]
            for trial in untrained + [t for n in sorted(self.deferred) for t, _ in self.deferred[n]]:
                self.study.tell(trial, None, state=TrialState.FAIL)
            self.pending.clear()
            self.deferred.clear()

        def _seed_ended(self, trial_id: str, result: dict, state: TrialState) -> None:
            self.seed_done.add(trial_id)
            number, repeat = self.tune_ids[trial_id]
            self.raw[number][repeat] = (state, result)
            if self.repeats > 1:
                self.ended[number][repeat] = seed_result(repeat, self._seed(number, repeat), state, result, self.tasks, self.checkpoints.get(trial_id))
                self.trials[number].set_user_attr(SEEDS, [s.to_dict() for s in sorted(self.ended[number].values(), key=lambda s: s.repeat)])
            self._all_ended(number)

        def _all_ended(self, number: int) -> None:
            """Once every seed of an architecture ended: tell it, or let it wait for the baseline."""
            if self.repeats == 1:
                if 0 not in self.raw[number]:
                    return
                state, result = self.raw[number][0]
                if state != TrialState.COMPLETE:
                    self._tell_result(number, result, state)
                    return
            else:
                if len(self.ended[number]) < self.repeats:
                    return
                failed = [s for s in sorted(self.ended[number].values(), key=lambda s: s.repeat) if s.state != "COMPLETE"]
                if failed:
                    _, result = self.raw[number][failed[0].repeat]
                    record = combined_record(number, self.plans[number], list(self.ended[number].values()), self.tasks,
                                             failure=seed_failure(failed[0], result, self.repeats))
                    self._tell(number, record, None, TrialState.FAIL)
                    return
            if self.needs_baseline and not self._baseline_covers(number):
                if self.trials[number].user_attrs.get("role") != ROLE_SINGLE_TASK:
                    self.waiting.add(number)
                    return
                this = TrialRecord(number, "COMPLETE", ROLE_SINGLE_TASK, seeds=[SeedResult(r, self._seed(number, r), "COMPLETE", val)
                                                                            for r, val in self._seed_vals(number).items()])
                # the baseline's seeds: the study's first single-task trial's, and this trial's for the repeats
                # it lacks (the confirmation race trains the baseline's new seeds in a trial of its own)
                known = baselines_by_repeat([*study_records(self.study), this], self.tasks) or {}
                self.baselines = {**(baselines_by_repeat([this], self.tasks) or {}), **known}
                self._tell_complete(number)
                for waiting in sorted(w for w in self.waiting if self._baseline_covers(w)):
                    self._tell_complete(waiting)
                    self.waiting.discard(waiting)
            else:
                self._tell_complete(number)

        def _baseline_covers(self, number: int) -> bool:
            """Whether the baseline's seed of every repeat of this architecture is known (paired Δm)."""
            return self.baselines is not None and all(r in self.baselines for r in self._seed_vals(number))

        def _seed_vals(self, number: int) -> dict[int, dict]:
            if self.repeats == 1:
                return {0: val_from_result(self.tasks, self.raw[number][0][1])}
            return {r: s.val for r, s in self.ended[number].items()}

        def _tell_complete(self, number: int) -> None:
            if self.repeats == 1:
                self._tell_result(number, self.raw[number][0][1], TrialState.COMPLETE)
                return
            seeds = [replace(s, delta_m=self._paired_delta_m(s.repeat, s.val)) if self.needs_baseline else s
                     for s in self.ended[number].values()]
            record = combined_record(number, self.plans[number], seeds, self.tasks)
            self._tell(number, record, [objective_value(record, name) for name in self.objectives], TrialState.COMPLETE)

        def _paired_delta_m(self, repeat: int, val) -> float:
            """A seed's Δm against the baseline's seed of the same repeat (NaN without it)."""
            base = (self.baselines or {}).get(repeat)
            return math.nan if base is None else delta_m(val, base, self.delta_m_over.higher_is_better)

        def _tell_failed_waiting(self, number: int, why: dict) -> None:
            if self.repeats == 1:
                self._tell_result(number, {**self.raw[number][0][1], **why}, TrialState.FAIL)
                return
            failure = Failure(why["fail_reason"], None, why["fail_origin"])
            self._tell(number, combined_record(number, self.plans[number], list(self.ended[number].values()), self.tasks, failure=failure),
                       None, TrialState.FAIL)

        def _tell_result(self, number: int, result: dict, state: TrialState) -> None:
            """One seed per architecture: the trial is its Tune trial, recorded from its last result."""
            values = None
            if state == TrialState.COMPLETE:
                if self.needs_baseline:
                    result = {**result, "delta_m": self._paired_delta_m(0, val_from_result(self.tasks, result))}
                values = [float(result[name]) for name in self.objectives]
            trial_id = next((tid for tid, key in self.tune_ids.items() if key == (number, 0)), None)
            record = trial_record(number, result, state, self.plans.get(number), self.tasks, self.checkpoints.get(trial_id))
            self._tell(number, record, values, state)

        def _tell(self, number: int, record: TrialRecord, values: list[float] | None, state: TrialState) -> None:
            trial = self.trials[number]
            attrs = trial_attrs(record, self.tasks)
            for key, value in attrs.items():
                trial.set_user_attr(key, value)
            if number in self.plans:
                first_seed = self.raw.get(number, {}).get(0)  # pictures of the exported seed, the first
                pictures = pictures_from_result(first_seed[1]) if first_seed else {}
                attach_trial_artifacts(self.study, trial, os.path.join(self.run_dir, "artifacts"), self.plans[number]["arch"], record.details, pictures)
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
            self.told.add(number)
            self._settle_deferred(number)
            self.counts[STATE_COUNTS[state]] += 1
            if state == TrialState.COMPLETE and record.delta_m is not None:
                dm = float(record.delta_m)
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
