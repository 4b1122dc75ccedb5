"""The search driver: Ray Tune trials sampled by Optuna, recorded in the study.

A run has two phases on one Optuna study: first the reference architectures (the
single-task networks that define Δm, and hard sharing), then the sampled trials, each of
which knows the baseline's validation metrics and so reports Δm every epoch (for ASHA and
Optuna's intermediate values). Continuing a study with a fresh Tuner is also how
``--resume`` works, which survives a killed driver (after ``kill -9``, restoring Tune's
experiment fails: the study has moved past Tune's last snapshot). What a trial runs is in
``trial``; how its outcome reaches the study, in ``searcher``.
"""

from __future__ import annotations

import contextlib
import ipaddress
import logging
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import optuna
from optuna.trial import TrialState

from ..arch import ArchConfig
from ..errors import RunError
from ..runs.rank import delta_m_terms
from ..runs.record import baselines_by_repeat, study_records
from ..runs.study import completed_seed_attrs, enqueue, finished_trials, objective_names, planned_params
from ..space.spaces import FAMILY_PARAM, ROLE_SINGLE_TASK, SpaceFunction, arch_params, default_train_values, grid_points, reference_archs, train_param_name
from ..text import plural
from ..train.problem import Problem
from .searcher import DUPLICATE_LIMIT, make_progress_callback, make_searcher
from .trial import SCHEDULER_EPOCH, run_trial

log = logging.getLogger("share_search")


Baselines = dict[int, dict[str, dict[str, float]]]  # repeat -> task -> metric -> the single-task baseline's value


@dataclass
class PhaseOutcome:
    ran: int
    baseline: Baselines | None
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
        with _loopback_only():
            ray.init(include_dashboard=False, runtime_env={"env_vars": {"PYTHONPATH": os.pathsep.join(filter(None, [os.getcwd(), os.environ.get("PYTHONPATH")]))}}, **kwargs)
        node_ip = ray.util.get_node_ip_address()
        if not ipaddress.ip_address(node_ip).is_loopback:
            log.warning("the local Ray listens on %s, not on loopback; its token authentication (~/.ray/auth_token) still guards it", node_ip)
    return True


@contextlib.contextmanager
def _loopback_only():
    """Start a local Ray whose servers listen on 127.0.0.1 only.

    On Linux Ray advertises the machine's address and its gRPC servers (GCS, raylet,
    workers) listen on every interface, even with ``_node_ip_address="127.0.0.1"`` (Ray
    turns loopback back into the machine's address). With clusters turned off, as Ray does
    on macOS and Windows, it takes 127.0.0.1 as the node's address, and every server then
    binds to loopback. Ray reads that switch once, at import: it is set on the imported
    constant, only for this start (a later ``--address`` run in the same process joins
    other machines as usual) and never in the environment, which ``ray start`` reads.

    This is the one private name of Ray that share-search uses: Ray's public switch is the
    environment variable ``RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER``, read only when ``ray`` is
    first imported (often before a run starts: tests, notebooks), and inherited by every
    process started afterwards, ``ray start`` included.
    """
    from ray._private import ray_constants

    before = ray_constants.ENABLE_RAY_CLUSTER
    ray_constants.ENABLE_RAY_CLUSTER = False
    try:
        yield
    finally:
        ray_constants.ENABLE_RAY_CLUSTER = before


# Ray's names for the per-trial resources a spec asks for (search.resources.<key>)
RAY_RESOURCE_NAMES = {"cpu": "CPU", "gpu": "GPU"}
# how long trials may wait with none running before the run says why (Tune's own warning is
# silenced with Ray's logs)
PLACEMENT_WAIT_S = 60.0


def trial_request(resources) -> dict[str, float]:
    """What one trial asks Ray for, by Ray's resource names (zero requests left out)."""
    asked = {RAY_RESOURCE_NAMES[key]: value for key, value in resources.model_dump().items()}
    return {name: value for name, value in asked.items() if value > 0}


def check_resources(resources) -> None:
    """Fail before any trial starts when no node of the cluster could ever hold one trial:
    Ray would keep it waiting forever. A trial runs on one node, so each node is checked
    on its own (by its total, not what is free now: busy nodes free up)."""
    import ray

    asked = trial_request(resources)
    nodes = [node["Resources"] for node in ray.nodes() if node["Alive"]]
    if any(all(node.get(name, 0.0) >= value for name, value in asked.items()) for node in nodes):
        return
    for key, name in RAY_RESOURCE_NAMES.items():
        most = max((node.get(name, 0.0) for node in nodes), default=0.0)
        if asked.get(name, 0.0) > most:
            total = sum(node.get(name, 0.0) for node in nodes)
            raise RunError(
                f"search.resources.{key}: a trial must fit on one node of the cluster; it asks for {asked[name]:g} {name}, "
                f"the largest node has {most:g} ({total:g} in all, on {len(nodes)} node(s))"
            )
    have = "; ".join(", ".join(f"{node.get(name, 0.0):g} {name}" for name in asked) for node in nodes)
    raise RunError(f"search.resources: a trial must fit on one node of the cluster; it asks for {_amounts(asked)}, and no node has all of it (nodes: {have})")


def _amounts(resources: dict[str, float]) -> str:
    return ", ".join(f"{value:g} {name}" for name, value in resources.items())


def placement_stall_message(resources, waited_s: float) -> str:
    """Why trials wait: what each asks for against what the cluster has free."""
    import ray

    asked = trial_request(resources)
    free, total = ray.available_resources(), ray.cluster_resources()
    have = ", ".join(f"{free.get(name, 0.0):g} of {total.get(name, 0.0):g} {name}" for name in asked)
    return (
        f"no trial has started for {waited_s:.0f} s: each asks for {_amounts(asked)} (search.resources), "
        f"and the cluster has {have} free; trials start when a node has room"
    )


def make_placement_watch(resources):
    from ray import tune

    class PlacementWatch(tune.Callback):
        """Warns once per stall when trials wait and none runs, saying why."""

        def __init__(self):
            self.since: float | None = None
            self.warned = False

        def on_step_begin(self, iteration, trials, **info):
            statuses = {t.status for t in trials}
            if "RUNNING" in statuses or "PENDING" not in statuses:
                self.since, self.warned = None, False
                return
            now = time.monotonic()
            self.since = self.since if self.since is not None else now
            if not self.warned and now - self.since >= PLACEMENT_WAIT_S:
                self.warned = True
                message = placement_stall_message(resources, now - self.since)
                log.warning(message)
                print(f"warning: {message}", file=sys.stderr)

    return PlacementWatch()


def make_sampler(problem: Problem):
    """The spec's sampler, from the sampler registry."""
    from ..spec.registry import create_sampler

    return create_sampler(problem.spec.search.sampler, seed=problem.spec.seed, trials=problem.spec.search.searched_trials)


def run_phase(
    study: optuna.Study,
    problem: Problem,
    storage,
    run_dir: Path,
    name: str,
    n_trials: int,
    baseline: Baselines | None,
    use_scheduler: bool,
    show_progress: bool,
    repeats: int | None = None,
) -> PhaseOutcome:
    """One Tuner over ``n_trials`` trials of the study (queued ones first): one Tune trial
    per seed each still needs (``repeats`` seeds each, by default ``search.repeats``;
    ``baseline``: the baseline's metrics by repeat)."""
    from ray import tune

    spec = problem.spec
    repeats = repeats or spec.search.repeats
    names, directions = objective_names(spec, problem)
    modes = ["max" if d == "maximize" else "min" for d in directions]
    searcher = make_searcher(
        study_name=study.study_name, storage=storage, sampler=make_sampler(problem), space=SpaceFunction(problem),
        tasks=problem.tasks, objectives=names, modes=modes, baselines=baseline,
        delta_m_over=delta_m_terms(problem.tasks, spec.search.delta_m), run_dir=str(run_dir),
        repeats=repeats, n_trials=n_trials, duplicate_limit=max(DUPLICATE_LIMIT, spec.search.searched_trials),
    )
    seeds = seeds_needed(study, n_trials, repeats)
    scheduler = None
    if use_scheduler and spec.search.scheduler is not None:
        from ray.tune.schedulers import ASHAScheduler

        s = spec.search.scheduler
        scheduler = ASHAScheduler(
            metric="delta_m", mode="max", time_attr=SCHEDULER_EPOCH,
            grace_period=s.grace_period, reduction_factor=s.reduction_factor, max_t=10**6,
        )
    resources = {"cpu": spec.search.resources.cpu, "gpu": spec.search.resources.gpu}
    trainable = tune.with_resources(tune.with_parameters(run_trial, problem=problem, baselines=baseline), resources)
    progress = make_progress_callback(searcher, seeds, show_progress)
    tuner = tune.Tuner(
        trainable,
        tune_config=tune.TuneConfig(
            search_alg=searcher, scheduler=scheduler, num_samples=seeds,
            max_concurrent_trials=spec.search.concurrency, reuse_actors=True,
        ),
        run_config=tune.RunConfig(
            name=name, storage_path=str(run_dir / "ray"), verbose=0, callbacks=[progress, make_placement_watch(spec.search.resources)],
            checkpoint_config=tune.CheckpointConfig(num_to_keep=1),
            failure_config=tune.FailureConfig(max_failures=0),
        ),
    )
    results = []
    if seeds:  # none when every seed of the phase's architectures was kept from an interrupted run
        try:
            results = tuner.fit()
        finally:
            if progress.progress is not None:
                progress.progress.stop()
    searcher.record_errors(results)  # a trial Tune saw error out: its error, from Tune's results
    searcher.ask_kept()
    searcher.finish()  # not after an interrupt: trials waiting for a baseline are retried then
    c = searcher.counts
    log.info("phase ended (ray/%s): %d complete, %d pruned, %d failed%s", name, c["complete"], c["pruned"], c["failed"],
             f"; {plural(c['duplicates'], 're-proposed architecture')} not retrained (told the earlier trial's result)" if c["duplicates"] else "")
    return PhaseOutcome(ran=n_trials, baseline=searcher.baselines, counts=dict(searcher.counts))


def seeds_needed(study: optuna.Study, n_trials: int, repeats: int) -> int:
    """Tune trials that ``n_trials`` architectures need: ``repeats`` each, less the seeds a
    queued retry kept from an interrupted run (queued trials are asked first, by number)."""
    queued = sorted(study.get_trials(deepcopy=False, states=(TrialState.WAITING,)), key=lambda t: t.number)[:n_trials]
    kept = sum(len({s["repeat"] for s in completed_seed_attrs(t) if isinstance(s.get("repeat"), int) and s["repeat"] < repeats}) for t in queued)
    return n_trials * repeats - kept


def baseline_from_study(study: optuna.Study, problem: Problem) -> Baselines | None:
    """The single-task baseline's validation metrics by repeat (repeat -> task -> metric -> value), if that trial completed."""
    return baselines_by_repeat(study_records(study), problem.tasks)


def enqueue_untried_families(study: optuna.Study, problem: Problem, budget: int) -> None:
    """Queue one trial (family fixed, the rest sampled) per family the study has not tried,
    so every family appears on the leaderboard before the sampler concentrates."""
    tried = {planned_params(t).get(FAMILY_PARAM) or t.user_attrs.get("family") for t in study.get_trials(deepcopy=False)}
    for name in [f for f in problem.spec.families if f not in tried][: max(budget, 0)]:
        enqueue(study, {FAMILY_PARAM: name})


def _why_baseline_failed(study: optuna.Study) -> str:
    """`` (trial N: reason)`` for the failed single-task trial, so the reason is printed, not only stored."""
    for t in reversed(study.get_trials(deepcopy=False, states=(TrialState.FAIL,))):
        if t.user_attrs.get("role") == ROLE_SINGLE_TASK and t.user_attrs.get("fail_reason"):
            return f" (trial {t.number}: {t.user_attrs['fail_reason'].strip().splitlines()[0]})"
    return " (see the study's fail_reason)"


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
    counts = {"complete": 0, "pruned": 0, "failed": 0, "duplicates": 0, "exhausted": 0}

    def add(outcome: PhaseOutcome):
        for k, v in outcome.counts.items():
            counts[k] += v

    def begin(phase: str, n: int) -> None:
        log.info("phase %s: %s", phase, plural(n, "trial"))
        if on_phase:
            on_phase(phase, n)

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
            begin("references", queued)
            outcome = run_phase(study, problem, storage, run_dir, f"references-{stamp}", queued, baseline, False, show_progress)
            add(outcome)
            baseline = outcome.baseline or baseline_from_study(study, problem)
        if baseline is None and spec.search.objective == "delta_m":
            raise RunError(f"the single-task baseline trial did not complete{_why_baseline_failed(study)}; Δm cannot be computed, so the search stops")

    if spec.search.sampler == "grid":
        seen = [planned_params(t) for t in study.get_trials(deepcopy=False) if t.state in done or t.state == TrialState.WAITING]
        todo = [p for p in grid_points(problem) if p not in seen]
        for p in todo:
            enqueue(study, p)
        remaining = len(study.get_trials(deepcopy=False, states=(TrialState.WAITING,)))
    else:
        remaining = spec.search.searched_trials - len(finished_trials(study))
        enqueue_untried_families(study, problem, remaining)
    if remaining > 0:
        begin("search", remaining)
        add(run_phase(study, problem, storage, run_dir, f"search-{stamp}", remaining, baseline, True, show_progress))
    return counts


def enqueue_reference(study: optuna.Study, problem: Problem, role: str, arch: ArchConfig) -> None:
    """Queue a reference trial: with parameters when the space holds it, else with its recipe."""
    params = arch_params(arch, problem)
    attrs: dict[str, Any] = {"role": role}
    if params is None:
        attrs["fixed_arch"] = arch.to_json()
        enqueue(study, {}, attrs)
        return
    searched = problem.spec.train.searched()
    defaults = default_train_values(problem.spec)
    params.update({train_param_name(k): defaults[k] for k in searched})
    enqueue(study, params, attrs)
