"""What runs inside one Ray Tune trial: build the network, train it, report every epoch,
checkpoint the best weights once, at the end; and the flat result format the searcher
reads back.

One checkpoint per trial, not one per improving epoch: with ``num_to_keep=1`` Tune saves
its whole experiment state, every trial's, after each trial checkpoint, so per-epoch
checkpoints cost the driver that save on most epochs, and each upload goes to the run's
storage. ``fit`` already keeps the best weights in memory; only COMPLETE trials are
ranked and exported, and an interrupted trial is run again.

Ray is imported inside the trial only, so the package imports without starting it.
"""

from __future__ import annotations

import json
import logging
import os
import sysconfig
import tempfile
import time
import traceback
from pathlib import Path
from typing import Any, Sequence

from ..arch import build_model
from ..arch._cost import count_macs, count_parameters
from ..errors import SpecError
from ..runs.artifacts import pictures_to_result
from ..runs.export import TRIAL_FILE, WEIGHTS, save_weights
from ..runs.pictures import dense_pictures
from ..runs.rank import delta_m, delta_m_terms
from ..runs.study import json_safe
from ..space.spaces import TrialPlan, plan_from_dict
from ..train.loop import EpochReport, TrainingDiverged, fit
from ..train.problem import Problem
from ..train.tasks import Task
from ..user_code import import_plugins
from .allocator import keep_freed_memory

# where a failure came from (user attribute ``fail_origin``): the user's code, data or
# resources, or a bug in share-search itself, which makes the run exit non-zero
ORIGIN_USER = "user"
ORIGIN_INTERNAL = "internal"
PACKAGE_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))  # share_search/, every layer
# The epoch count ASHA compares trials at (its ``time_attr``): epochs of the trial's last
# training phase, reported only in that phase. A progressive network trains one column per
# phase; before its last column trains, tasks it has not trained yet sit at chance, and the
# scheduler would stop it for that. In its last phase every earlier column is finished, so
# its k-th epoch there compares with another family's k-th epoch. A validation within an
# epoch (``train.eval_every``) reports its Δm (Optuna's intermediate values count every
# report) but no scheduler epoch, so ASHA's clock stays in whole epochs.
SCHEDULER_EPOCH = "scheduler_epoch"
log = logging.getLogger("share_search")
LIBRARY_DIRS = tuple({os.path.abspath(sysconfig.get_paths()[key]) for key in ("stdlib", "platstdlib", "purelib", "platlib")})


def val_from_result(tasks: Sequence[Task], result: dict[str, Any]) -> dict[str, dict[str, float]]:
    """Per-task validation metrics back from a flat Ray result (``<task>.<metric>`` keys)."""
    return {t.name: {m: result[f"{t.name}.{m}"] for m in t.metrics if f"{t.name}.{m}" in result} for t in tasks}


def trial_result(problem: Problem, val: dict[str, dict[str, float]], baseline: dict[str, dict[str, float]] | None) -> dict[str, Any]:
    """Flat Ray result: ``<task>.<metric>`` validation values, and Δm (by the spec's
    ``search.delta_m``) when the baseline is known."""
    out: dict[str, Any] = {f"{task}.{metric}": value for task, values in val.items() for metric, value in values.items()}
    if baseline is not None:
        out["delta_m"] = delta_m(val, baseline, delta_m_terms(problem.tasks, problem.spec.search.delta_m).higher_is_better)
    return out


def failure_origin(exc: BaseException) -> str:
    """``user`` or ``internal``: a diverged loss, an out-of-memory error or a spec value the
    trial's machine cannot honour (fp16 on a node without CUDA) is the user's (their values,
    their data, their machine); otherwise the innermost frame of the traceback that is
    either share-search's or the user's decides. Frames of Python and of installed libraries
    (torch, numpy, ...) are passed over: torch raising inside a user backbone's ``forward`` is
    the backbone's fault, torch raising on what share-search handed it is share-search's."""
    if isinstance(exc, (TrainingDiverged, MemoryError, SpecError)) or type(exc).__name__ == "OutOfMemoryError":
        return ORIGIN_USER
    for frame, _ in reversed(list(traceback.walk_tb(exc.__traceback__))):
        path = os.path.abspath(frame.f_code.co_filename)
        if path.startswith(PACKAGE_DIR + os.sep):
            return ORIGIN_INTERNAL
        if not path.startswith(LIBRARY_DIRS) and not frame.f_code.co_filename.startswith("<"):
            return ORIGIN_USER
    return ORIGIN_INTERNAL


def failure_result(exc: BaseException) -> dict[str, Any]:
    """What a failed trial reports: a one-line reason, the full traceback and its origin."""
    return {
        "final": True,
        "failed": True,
        "fail_reason": f"{type(exc).__name__}: {exc}"[:2000],
        "fail_traceback": "".join(traceback.format_exception(exc)),
        "fail_origin": failure_origin(exc),
    }


def _node_id() -> str:
    import ray

    return ray.get_runtime_context().get_node_id()


def delta_m_baseline(problem: Problem, baseline: dict[str, dict[str, float]] | None) -> dict[str, dict[str, float]] | None:
    """The baseline's values of the metrics Δm counts (``search.delta_m``): what ``fit`` selects epochs on."""
    if baseline is None:
        return None
    terms = delta_m_terms(problem.tasks, problem.spec.search.delta_m).higher_is_better
    return {task: {m: baseline.get(task, {}).get(m) for m in metrics} for task, metrics in terms.items()}


def prediction_pictures(model, problem: Problem, number: int) -> dict[str, str]:
    """``{"pictures_json": ...}``: the dense tasks' predictions on the first validation samples,
    drawn here with the selected weights (``fit`` leaves them in ``model``); the searcher stores
    them as the trial's artifacts. A picture that cannot be drawn is logged, never a failed trial."""
    try:
        pictures = dense_pictures(model, problem.data.val, problem.tasks)
    except Exception as exc:
        log.warning("trial %s: no prediction pictures (%s: %s)", number, type(exc).__name__, exc)
        return {}
    return {"pictures_json": pictures_to_result(pictures)} if pictures else {}


def run_trial(config: dict[str, Any], problem: Problem, baselines: dict[int, dict[str, dict[str, float]]] | None) -> None:
    """Ray Tune function trainable: build, train, report every epoch, checkpoint the best weights with the final result.

    One seed of an architecture (``config["repeat"]``, its seed in the plan); ``baselines``:
    the single-task baseline's metrics by repeat, so each seed is measured against the
    baseline's seed of the same repeat (paired)."""
    from ray import tune

    keep_freed_memory()  # the fit runs in a thread of a fresh worker: see allocator.py
    import_plugins(problem.spec.plugins)  # a worker imports share-search afresh: what the plugins register is not here yet
    plan: TrialPlan = plan_from_dict(config["plan"])
    number = config["optuna_trial"]
    repeat = int(config.get("repeat", 0))
    baseline = (baselines or {}).get(repeat)
    start = time.perf_counter()
    info: dict[str, Any] = {"optuna_trial": number, "repeat": repeat, "family": plan.arch.family, "arch": plan.arch.summary(),
                            "node": _node_id(), "started_at": time.time()}
    try:
        import torch

        torch.manual_seed(plan.train.seed)  # initial weights from the seed, not from what this (reused) worker ran before
        model = build_model(plan.arch, problem.backbone, problem.tasks)
        info["params"] = count_parameters(model)
        info["macs"] = count_macs(model, problem.backbone.input_shape)

        def report(ep: EpochReport) -> None:
            scheduled = {SCHEDULER_EPOCH: ep.phase_epoch} if ep.last_phase and ep.epoch_end else {}  # ASHA counts whole epochs
            tune.report({**info, **trial_result(problem, ep.val, baseline), "epoch": ep.epoch, "train_loss": ep.train_loss, "val_loss": ep.val_loss, **scheduled})

        result = fit(model, problem.data, problem.tasks, plan.train, report=report, baseline=delta_m_baseline(problem, baseline))
        checkpoint = Path(tempfile.mkdtemp(prefix="share-search-ckpt-"))
        save_weights(result.state_dict, checkpoint / WEIGHTS)
        (checkpoint / TRIAL_FILE).write_text(json.dumps({"optuna_trial": number, "epoch": result.best_epoch, "plan": config["plan"]}))
    except Exception as exc:  # recorded as FAIL with its reason, traceback and origin; the search goes on
        tune.report({**info, **failure_result(exc)})
        return
    final = {
        **info,
        **trial_result(problem, result.val, baseline),
        "final": True,
        "best_epoch": result.best_epoch,
        "best_epochs_json": json.dumps(result.best_epochs),  # task -> its selected epoch
        "time_s": time.perf_counter() - start,
        "ended_at": time.time(),
        # JSON strings: Ray flattens nested dicts in results
        "history_json": json.dumps(json_safe(result.history)),
        "details_json": json.dumps(json_safe(model.architecture_details())),
        **prediction_pictures(model, problem, number),
    }
    tune.report(final, checkpoint=tune.Checkpoint.from_directory(str(checkpoint)))
