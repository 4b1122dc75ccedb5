"""The search driver: Ray Tune trials sampled by Optuna, recorded in the study.

This is the only module that imports Ray. A run has two phases on one Optuna study:
first the reference architectures (the single-task networks that define Δm, and hard
sharing), then the sampled trials, each of which knows the baseline's validation metrics
and so reports Δm every epoch (for ASHA and Optuna's intermediate values). Continuing a
study with a fresh Tuner is also how ``--resume`` works, which survives a killed driver
(see shared notes: restoring the stock searcher after ``kill -9`` fails).
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import optuna
from optuna.trial import TrialState

from .arch import build_model
from .arch._cost import count_macs, count_parameters
from .artifacts import attach_trial_artifacts
from .export import TRIAL_FILE, WEIGHTS, save_weights
from .errors import RunError
from .problem import Problem
from .rank import delta_m
from .spaces import FAMILY_PARAM, ROLE_SINGLE_TASK, TrialPlan, enqueue_reference, grid_points, plan_from_dict, reference_archs, SpaceFunction
from .tasks import Task
from .study import finished_trials, json_safe, objective_names, planned_params
from .train import EpochReport, fit

log = logging.getLogger("share_search")



# --------------------------------------------------------------------------- inside a trial
def primary_metrics(tasks: Sequence[Task], val: dict[str, dict[str, float]]) -> dict[str, float]:
    return {t.name: val[t.name][t.metric] for t in tasks}


def val_from_result(tasks: Sequence[Task], result: dict[str, Any]) -> dict[str, dict[str, float]]:
    """Per-task validation metrics back from a flat Ray result (``<task>.<metric>`` keys)."""
    return {t.name: {m: result[f"{t.name}.{m}"] for m in t.metrics if f"{t.name}.{m}" in result} for t in tasks}


def _directions(tasks: Sequence[Task]) -> dict[str, bool]:
    return {t.name: t.higher_is_better for t in tasks}


def trial_result(problem: Problem, val: dict[str, dict[str, float]], baseline: dict[str, float] | None) -> dict[str, Any]:
    """Flat Ray result: ``<task>.<metric>`` validation values, and Δm when the baseline is known."""
    out: dict[str, Any] = {f"{task}.{metric}": value for task, values in val.items() for metric, value in values.items()}
    if baseline is not None:
        out["delta_m"] = delta_m(primary_metrics(problem.tasks, val), baseline, problem.higher_is_better)
    return out


def _node_id() -> str:
    import ray

    return ray.get_runtime_context().get_node_id()


def run_trial(config: dict[str, Any], problem: Problem, baseline: dict[str, float] | None) -> None:
    """Ray Tune function trainable: build, train, report every epoch, checkpoint the best."""
    from ray import tune

    plan: TrialPlan = plan_from_dict(config["plan"])
    number = config["optuna_trial"]
    start = time.perf_counter()
    info: dict[str, Any] = {"optuna_trial": number, "family": plan.arch.family, "arch": plan.arch.summary(), "node": _node_id()}
    try:
        import torch

        torch.manual_seed(plan.train.seed)  # initial weights from the seed, not from what this (reused) worker ran before
        model = build_model(plan.arch, problem.backbone, problem.tasks)
        info["params"] = count_parameters(model)
        info["macs"] = count_macs(model, problem.backbone.input_shape)
        best: dict[str, Any] = {}

        def report(ep: EpochReport) -> None:
            metrics = {**info, **trial_result(problem, ep.val, baseline), "epoch": ep.epoch, "train_loss": ep.train_loss, "val_loss": ep.val_loss}
            checkpoint = None
            if ep.is_best:
                best.update(val=ep.val, epoch=ep.epoch)
                folder = tempfile.mkdtemp(prefix="share-search-ckpt-")
                save_weights(ep.model.state_dict(), Path(folder) / WEIGHTS)
                (Path(folder) / TRIAL_FILE).write_text(json.dumps({"optuna_trial": number, "epoch": ep.epoch, "plan": config["plan"]}))
                checkpoint = tune.Checkpoint.from_directory(folder)
            tune.report(metrics, checkpoint=checkpoint)

        result = fit(model, problem.data, problem.tasks, plan.train, report=report)
    except Exception as exc:  # recorded as FAIL with its reason; the search goes on
        tune.report({**info, "final": True, "failed": True, "fail_reason": f"{type(exc).__name__}: {exc}"[:2000]})
        return
    final = {
        **info,
        **trial_result(problem, result.val, baseline),
        "final": True,
        "best_epoch": result.best_epoch,
        "time_s": time.perf_counter() - start,
        # JSON strings: Ray flattens nested dicts in results
        "history_json": json.dumps(json_safe(result.history)),
        "details_json": json.dumps(json_safe(model.architecture_details())),
    }
    tune.report(final)


# --------------------------------------------------------------------------- the searcher
def _make_searcher_class():
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
                    self.baseline = primary_metrics(self.tasks, val_from_result(self.tasks, result))
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
                    result = {**result, "delta_m": delta_m(primary_metrics(self.tasks, val), self.baseline, _directions(self.tasks))}
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
                ot.set_user_attr("fail_reason", f"objective could not be recorded: {exc}")
                self._ot_study.tell(ot, None, state=TrialState.FAIL)
                state = TrialState.FAIL
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


# --------------------------------------------------------------------------- progress
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


def _make_progress_callback(searcher, total: int, show: bool):
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


# --------------------------------------------------------------------------- the driver
@dataclass
class PhaseOutcome:
    ran: int
    baseline: dict[str, float] | None
    counts: dict[str, int] = field(default_factory=dict)


def quiet_ray() -> None:
    """Ray's own tables and log floods off; the progress bar is the output."""
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
    os.environ.setdefault("RAY_CHDIR_TO_TRIAL_DIR", "0")
    os.environ.setdefault("RAY_DEDUP_LOGS", "0")
    os.environ.setdefault("TUNE_DISABLE_STRICT_METRIC_CHECKING", "1")  # reference trials report no Δm yet
    os.environ.setdefault("TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S", "100")
    # Ctrl-C raises KeyboardInterrupt at once (Tune's own handler would end the phase as if it
    # had finished); the runner then marks the stopped trials interrupted, for --resume.
    os.environ.setdefault("TUNE_DISABLE_SIGINT_HANDLER", "1")
    for name in ("ray", "ray.tune", "ray.train", "ray.air"):
        logging.getLogger(name).setLevel(logging.CRITICAL)


def _check_reachable(address: str) -> None:
    """Fail at once on a ``host:port`` nobody listens on (``ray.init`` retries it for minutes)."""
    import socket

    host, _, port = address.split("://")[-1].rpartition(":")
    if not host or not port.isdigit():
        return  # "auto", "local" and other forms are Ray's to resolve
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=10).close()
    except OSError as exc:
        raise RunError(f"--address: cannot reach a Ray head at {address!r} ({exc.strerror or exc}); start one with `ray start --head`") from None


def start_ray(address: str | None, log_file: Path | None = None) -> bool:
    """Join ``address`` or start a local Ray; returns True when this call started it."""
    import ray

    quiet_ray()
    if address:
        _check_reachable(address)
    if ray.is_initialized():
        return False
    kwargs: dict[str, Any] = dict(log_to_driver=False, logging_level=logging.ERROR, configure_logging=True)
    if address:
        try:
            ray.init(address=address, **kwargs)
        except Exception as exc:
            raise RunError(f"--address: cannot join the Ray cluster at {address!r}: {type(exc).__name__}: {str(exc).splitlines()[0]}") from exc
    else:
        ray.init(include_dashboard=False, runtime_env={"env_vars": {"PYTHONPATH": os.pathsep.join(filter(None, [os.getcwd(), os.environ.get("PYTHONPATH")]))}}, **kwargs)
    return True


def make_sampler(problem: Problem):
    s = problem.spec.search
    seed = problem.spec.seed
    if s.sampler == "tpe":
        return optuna.samplers.TPESampler(seed=seed, multivariate=True, group=True, constant_liar=True, n_startup_trials=min(10, max(2, s.trials // 3)))
    if s.sampler == "nsga2":
        return optuna.samplers.NSGAIISampler(seed=seed)
    return optuna.samplers.RandomSampler(seed=seed)  # random; grid enqueues every point itself


def run_phase(
    study: optuna.Study,
    problem: Problem,
    storage,
    run_dir: Path,
    name: str,
    n_trials: int,
    baseline: dict[str, float] | None,
    use_scheduler: bool,
    show_progress: bool,
) -> PhaseOutcome:
    """One Tuner over ``n_trials`` trials of the study (queued ones first)."""
    from ray import tune

    spec = problem.spec
    names, directions = objective_names(spec, problem)
    modes = ["max" if d == "maximize" else "min" for d in directions]
    Search = _make_searcher_class()
    searcher = Search(
        tasks=problem.tasks,
        objectives=names,
        artifact_dir=str(run_dir / "artifacts"),
        baseline=baseline,
        space=SpaceFunction(problem),
        metric=names[0] if len(names) == 1 else names,
        mode=modes[0] if len(modes) == 1 else modes,
        storage=storage,
        study_name=study.study_name,
        sampler=make_sampler(problem),
    )
    scheduler = None
    if use_scheduler and spec.search.scheduler is not None:
        from ray.tune.schedulers import ASHAScheduler

        s = spec.search.scheduler
        scheduler = ASHAScheduler(
            metric="delta_m", mode="max", time_attr="training_iteration",
            grace_period=s.grace_period, reduction_factor=s.reduction_factor, max_t=10**6,
        )
    resources = {"cpu": spec.search.resources.cpu, "gpu": spec.search.resources.gpu}
    trainable = tune.with_resources(tune.with_parameters(run_trial, problem=problem, baseline=baseline), resources)
    progress = _make_progress_callback(searcher, n_trials, show_progress)
    tuner = tune.Tuner(
        trainable,
        tune_config=tune.TuneConfig(
            search_alg=searcher, scheduler=scheduler, num_samples=n_trials,
            max_concurrent_trials=spec.search.concurrency, reuse_actors=True,
        ),
        run_config=tune.RunConfig(
            name=name, storage_path=str(run_dir / "ray"), verbose=0, callbacks=[progress],
            checkpoint_config=tune.CheckpointConfig(num_to_keep=1),
            failure_config=tune.FailureConfig(max_failures=0),
        ),
    )
    try:
        tuner.fit()
    finally:
        if progress.progress is not None:
            progress.progress.stop()
    searcher.finish()  # not after an interrupt: trials waiting for a baseline are retried then
    return PhaseOutcome(ran=n_trials, baseline=searcher.baseline, counts=dict(searcher.counts))


def baseline_from_study(study: optuna.Study, problem: Problem) -> dict[str, float] | None:
    """The single-task baseline's primary validation metrics, if that trial completed."""
    for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
        if t.user_attrs.get("role") == ROLE_SINGLE_TASK and t.user_attrs.get("val"):
            return primary_metrics(problem.tasks, t.user_attrs["val"])
    return None


def enqueue_untried_families(study: optuna.Study, problem: Problem, budget: int) -> None:
    """Queue one trial (family fixed, the rest sampled) per family the study has not tried,
    so every family appears on the leaderboard before the sampler concentrates."""
    tried = {planned_params(t).get(FAMILY_PARAM) or t.user_attrs.get("family") for t in study.get_trials(deepcopy=False)}
    for name in [f for f in problem.spec.families if f not in tried][: max(budget, 0)]:
        study.enqueue_trial({FAMILY_PARAM: name}, skip_if_exists=False)


def _has_role(study: optuna.Study, role: str, states) -> bool:
    return any(t.user_attrs.get("role") == role for t in study.get_trials(deepcopy=False, states=states))


def search(
    study: optuna.Study,
    problem: Problem,
    storage,
    run_dir: Path,
    show_progress: bool = True,
    on_phase: Callable[[str, int], None] | None = None,
) -> dict[str, int]:
    """Run what the study still lacks: references first, then sampled (or grid) trials."""
    spec = problem.spec
    stamp = time.strftime("%Y%m%d-%H%M%S")
    done = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL)
    counts = {"complete": 0, "pruned": 0, "failed": 0}

    def add(outcome: PhaseOutcome):
        for k, v in outcome.counts.items():
            counts[k] += v

    baseline = baseline_from_study(study, problem)
    if spec.search.baselines:
        queued = 0
        for role, arch in reference_archs(problem):
            finished = [t for t in finished_trials(study) if t.user_attrs.get("role") == role]
            waiting = _has_role(study, role, (TrialState.WAITING,))
            if not finished and not waiting:
                enqueue_reference(study, problem, role, arch)
            queued += 0 if finished else 1
        if queued:
            if on_phase:
                on_phase("references", queued)
            outcome = run_phase(study, problem, storage, run_dir, f"references-{stamp}", queued, None, False, show_progress)
            add(outcome)
            baseline = outcome.baseline or baseline_from_study(study, problem)
        if baseline is None and spec.search.objective == "delta_m":
            raise RunError("the single-task baseline trial did not complete (see the study's fail_reason); Δm cannot be computed, so the search stops")

    if spec.search.sampler == "grid":
        seen = [planned_params(t) for t in study.get_trials(deepcopy=False) if t.state in done or t.state == TrialState.WAITING]
        todo = [p for p in grid_points(problem) if p not in seen]
        for p in todo:
            study.enqueue_trial(p, skip_if_exists=False)
        remaining = len(study.get_trials(deepcopy=False, states=(TrialState.WAITING,)))
    else:
        remaining = spec.search.trials - len(finished_trials(study))
        enqueue_untried_families(study, problem, remaining)
    if remaining > 0:
        if on_phase:
            on_phase("search", remaining)
        add(run_phase(study, problem, storage, run_dir, f"search-{stamp}", remaining, baseline, True, show_progress))
    return counts
