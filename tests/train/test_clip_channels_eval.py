"""``train.grad_clip``, ``train.channels_last`` and ``train.eval_every``; the new keys through the CLI.

- Clipping: one SGD step of a fit equals the step computed by hand with the gradient scaled
  to ``max_norm`` (its joint L2 norm over the phase's parameters).
- channels_last: a convnet trains in NHWC memory format with the same results (within
  floating-point tolerance) as in the usual layout, and comes back contiguous; on 2-D inputs
  it changes nothing.
- eval_every: validations every n optimizer steps of a phase besides each epoch's end, each a
  selection point, a history row and a report; in a real search ASHA's clock
  (``scheduler_epoch``) still counts whole epochs, reported only at epoch ends.
"""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path

import pytest
import torch

from share_search.cli import main
from share_search.engine.trial import SCHEDULER_EPOCH
from share_search.runs.export import save_weights
from share_search.train.loop import TrainConfig, fit
from tests.runs import small_spec, write_spec
from tests.train._problems import TASKS, conv_network, digit_images, mlp_network


def same_state(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


# --------------------------------------------------------------------------- clipping
def one_step(max_norm: float | None) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    """A fit of one full-batch SGD step, and that step computed by hand."""
    data = digit_images(flat=True, rows=200)
    config = TrainConfig(optimizer="sgd", momentum=0.0, lr=0.5, epochs=1, batch_size=len(data.train), device="cpu", grad_clip=max_norm)
    model = mlp_network()
    start = {k: v.clone() for k, v in model.state_dict().items()}
    outputs = model(torch.as_tensor(data.train.x))
    total = sum(t.loss(outputs[t.name], torch.as_tensor(data.train.y[t.label])) for t in TASKS)
    named = dict(model.named_parameters())
    grads = dict(zip(named, torch.autograd.grad(total, list(named.values()))))
    norm = torch.sqrt(sum((g**2).sum() for g in grads.values()))
    factor = 1.0 if max_norm is None else min(1.0, max_norm / (float(norm) + 1e-6))
    expected = {k: start[k] - 0.5 * factor * grads[k] if k in grads else start[k] for k in start}
    return fit(model, data, TASKS, config).state_dict, expected | {"_norm": norm}


def test_grad_clip_scales_the_joint_gradient_to_max_norm():
    clipped, expected = one_step(0.05)
    assert expected.pop("_norm") > 0.1  # well above max_norm: the clip acts
    for k in expected:
        torch.testing.assert_close(clipped[k], expected[k], rtol=1e-4, atol=1e-6, msg=lambda m: f"{k}: {m}")
    plain, expected_plain = one_step(None)
    expected_plain.pop("_norm")
    for k in expected_plain:
        torch.testing.assert_close(plain[k], expected_plain[k], rtol=1e-4, atol=1e-6)
    assert not same_state(plain, clipped)


# --------------------------------------------------------------------------- channels_last
def test_channels_last_trains_a_convnet_in_nhwc_with_the_same_results(tmp_path):
    data = digit_images(rows=600)
    config = TrainConfig(lr=1e-2, epochs=2, batch_size=32, device="cpu")
    formats = []

    def report(ep):
        conv = [m for m in ep.model.modules() if isinstance(m, torch.nn.Conv2d)][-1]  # 8 -> 16 channels: NHWC differs from NCHW
        formats.append(conv.weight.is_contiguous(memory_format=torch.channels_last) and not conv.weight.is_contiguous())

    model = conv_network()
    nhwc = fit(model, data, TASKS, dataclasses.replace(config, channels_last=True), report=report)
    usual = fit(conv_network(), data, TASKS, config)
    assert formats == [True, True], "the convolutions did not train in channels_last"
    assert all(p.is_contiguous() for p in model.parameters()), "the model should come back in the usual layout"
    assert all(v.is_contiguous() for v in nhwc.state_dict.values())
    save_weights(nhwc.state_dict, tmp_path / "w.safetensors")  # safetensors takes contiguous tensors only
    for k in usual.state_dict:
        torch.testing.assert_close(nhwc.state_dict[k], usual.state_dict[k], rtol=1e-3, atol=1e-4, msg=lambda m: f"{k}: {m}")
    for a, b in zip(nhwc.history, usual.history):
        assert a["val_loss"] == pytest.approx(b["val_loss"], rel=1e-4)
    assert nhwc.val["digit"]["accuracy"] == pytest.approx(usual.val["digit"]["accuracy"], abs=0.01)


def test_channels_last_changes_nothing_for_flat_inputs():
    data = digit_images(flat=True, rows=300)
    config = TrainConfig(lr=1e-2, epochs=1, batch_size=32, device="cpu")
    a = fit(mlp_network(), data, TASKS, dataclasses.replace(config, channels_last=True))
    b = fit(mlp_network(), data, TASKS, config)
    assert same_state(a.state_dict, b.state_dict) and a.history == b.history


# --------------------------------------------------------------------------- eval_every
def test_eval_every_validates_within_epochs_and_selects_among_all_validations():
    data = digit_images(flat=True, rows=400)  # 240 training rows: 8 steps of 32 per epoch
    config = TrainConfig(lr=1e-2, epochs=2, batch_size=32, device="cpu", eval_every=3)
    reports, saved = [], {}

    def report(ep):
        reports.append(ep)
        if ep.is_best:  # a caller that saves on is_best gets the weights fit returns
            saved["state"] = {k: v.clone() for k, v in ep.model.state_dict().items()}
            saved["val"] = ep.val

    result = fit(mlp_network(), data, TASKS, config, report=report)
    assert [(r.epoch, r.step, r.epoch_end) for r in reports] == [
        (1, 3, False), (1, 6, False), (1, 8, True), (2, 9, False), (2, 12, False), (2, 15, False), (2, 16, True)]
    assert [r.phase_epoch for r in reports] == [1, 1, 1, 2, 2, 2, 2]
    assert [row["step"] for row in result.history] == [3, 6, 8, 9, 12, 15, 16]
    assert [row["at_epoch"] for row in result.history] == pytest.approx([3 / 8, 6 / 8, 1, 1 + 1 / 8, 1.5, 1 + 7 / 8, 2])
    assert [row["is_best"] for row in result.history] == [r.is_best for r in reports]
    assert same_state(result.state_dict, saved["state"]) and result.val == saved["val"]
    assert all(math.isfinite(row["train_loss"]) for row in result.history)


def test_the_reports_curves_place_validations_within_epochs_at_their_fraction():
    from share_search.runs.record import TrialRecord
    from share_search.runs.report import TaskInfo, curve_of

    data = digit_images(flat=True, rows=400)
    history = fit(mlp_network(), data, TASKS, TrainConfig(lr=1e-2, epochs=2, batch_size=32, device="cpu", eval_every=4)).history
    curve = curve_of(1, TrialRecord(0, "COMPLETE", None, history=history), [TaskInfo("digit", "accuracy", True)])
    assert curve.epochs == pytest.approx([0.5, 1, 1.5, 2])
    assert curve.values["digit"] == [row["digit.accuracy"] for row in history]


def test_without_eval_every_history_is_as_before():
    data = digit_images(flat=True, rows=300)
    result = fit(mlp_network(), data, TASKS, TrainConfig(lr=1e-2, epochs=2, batch_size=32, device="cpu"))
    assert [row["epoch"] for row in result.history] == [1, 2]
    assert not {"step", "at_epoch"} & set(result.history[0])


def test_asha_still_counts_epochs_when_trials_validate_within_them(tmp_path, ray_session):
    """A real search with ASHA and eval_every: every report reaches Tune (Optuna's intermediate
    values count them all), but only each epoch's end carries the scheduler's epoch."""
    from share_search.engine.runner import run_search
    from share_search.spec.model import parse_spec

    spec = parse_spec(small_spec(
        name="eval_every",
        families={"tree": {}},
        train={"epochs": 2, "batch_size": 32, "eval_every": 2},  # 300 digits: 210 to train, 7 steps per epoch
        search={"sampler": "random", "trials": 3, "concurrency": 1,
                "scheduler": {"type": "asha", "grace_period": 1, "reduction_factor": 2}},
    ))
    outcome = run_search(spec, out=tmp_path / "run", show_progress=False)
    results = sorted((outcome.run_dir / "ray").rglob("result.json"))
    assert len(results) == 3, "the two references (single-task, hard sharing) and one sampled trial"
    assert sum(path.parts[-3].startswith("search-") for path in results) == 1
    for path in results:
        rows = [json.loads(line) for line in Path(path).read_text().splitlines() if line.strip()]
        trained = [r for r in rows if not r.get("final")]
        # validations at phase steps 2, 4, 6, the end of epoch 1 (step 7), 8, 10, 12, the end of epoch 2 (14)
        assert [r["epoch"] for r in trained] == [1, 1, 1, 1, 2, 2, 2, 2], path
        assert [r.get(SCHEDULER_EPOCH) for r in trained] == [None, None, None, 1, None, None, None, 2], path
        if path.parts[-3].startswith("search-"):  # the baseline is known: ASHA compares Δm at each scheduler epoch
            assert all("delta_m" in r for r in trained)


# --------------------------------------------------------------------------- the CLI
def test_validate_shows_the_training_features(tmp_path, capsys):
    path = write_spec(tmp_path / "s.yaml", small_spec(train={"precision": "bf16", "lr_schedule": "poly", "warmup_epochs": 0.5, "grad_clip": 1.0, "channels_last": True, "eval_every": 50, "epochs": 2}))
    assert main(["validate", str(path)]) == 0
    out = capsys.readouterr().out
    assert "train: precision bf16, lr_schedule poly (power 0.9) per step, warmup_epochs 0.5, grad_clip 1.0, channels_last true, eval_every 50 steps" in out


@pytest.mark.parametrize(
    "train, line",
    [
        ({"precision": "fp8"}, "train.precision: input should be 'fp32', 'bf16' or 'fp16', got 'fp8'"),
        ({"precision": "fp16", "device": "cpu"}, "train.precision: fp16 needs a CUDA device"),
        ({"grad_clip": 0}, "train.grad_clip: input should be greater than 0, got 0"),
        ({"grad_clip": "big"}, "train.grad_clip: input should be a valid number"),
        ({"channels_last": "yes please"}, "train.channels_last: input should be a valid boolean"),
        ({"eval_every": 0}, "train.eval_every: input should be greater than 0, got 0"),
        ({"eval_every": 2.5}, "train.eval_every: input should be a valid integer"),
        ({"lr_schedule": "step"}, "train.lr_step_epochs: lr_schedule: step needs the epochs between decays"),
        ({"warmup_epochs": 1}, "train.warmup_epochs: the warm-up must end before training does"),
    ],
)
def test_bad_training_features_exit_2_with_one_line_naming_the_key(tmp_path, capsys, train, line):
    path = write_spec(tmp_path / "s.yaml", small_spec(train=train))
    assert main(["validate", str(path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: {line}") and err.count("\n") == 1 and "Traceback" not in err, err


# --------------------------------------------------------------------------- a streamed folder
def test_every_feature_trains_a_streamed_folder_exactly_as_in_memory(tmp_path):
    """The batching seam with all the features on: a folder streamed through its DataLoader gives
    the same validations (steps counted from the loader), weights and metrics as held in memory."""
    from share_search.arch import build_model
    from share_search.data.folder import FolderSplit
    from share_search.space.spaces import reference_archs
    from share_search.train.problem import load_problem
    from tests.data.test_folder import problem_spec
    from tests.data.folder_fixture import write_nyuv2

    nyu = write_nyuv2(tmp_path / "nyuv2", n_train=8, n_val=4)
    config = TrainConfig(epochs=2, batch_size=2, lr=0.01, seed=4, device="cpu", precision="bf16", lr_schedule="cosine",
                         warmup_epochs=0.5, grad_clip=0.5, channels_last=True, eval_every=3)
    results = {}
    for in_memory in (True, False):
        problem = load_problem(problem_spec(nyu, in_memory=in_memory))
        assert isinstance(problem.data.train, FolderSplit) != in_memory
        torch.manual_seed(0)
        model = build_model(reference_archs(problem)[1][1], problem.backbone, problem.tasks)
        results[in_memory] = fit(model, problem.data, problem.tasks, config)
    held, streamed = results[True], results[False]
    steps = math.ceil(len(problem.data.train) / 2)
    assert [row["step"] for row in held.history] == [row["step"] for row in streamed.history]
    assert held.history[-1]["step"] == 2 * steps and len(held.history) > 2
    assert held.history == streamed.history and held.val == streamed.val and held.test == streamed.test
    assert all(torch.equal(held.state_dict[k], streamed.state_dict[k]) for k in held.state_dict)
