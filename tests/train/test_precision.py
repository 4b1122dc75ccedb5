"""``train.precision``: bf16 autocast on the CPU with every loss weighting; fp16's loss scaling.

bf16 runs here. fp16 needs CUDA: on a CPU device it is refused naming ``train.precision``,
and its full training test runs only where PyTorch sees a GPU (skipped elsewhere, CI
included). What fp16 adds to training, the GradScaler, is tested here with a real
``torch.amp.GradScaler`` on the CPU (PyTorch supports one there): every weighting leaves
gradients that, once unscaled, equal the fp32 ones, and GradNorm and PCGrad compare the
per-task gradients in true units, unscaled before any norm, dot product or projection.
"""

from __future__ import annotations

import dataclasses

import pytest
import torch

from share_search.cli import main
from share_search.engine.trial import ORIGIN_USER, failure_origin
from share_search.errors import SpecError
from share_search.spec.model import parse_spec
from share_search.train.loop import TrainConfig, fit
from share_search.train.precision import LossScale, Precision
from share_search.train.weighting import WEIGHTINGS, PCGrad, Weighting, make_weighting
from tests.runs import small_spec, write_spec
from tests.train._problems import NAMES, TASKS, conv_network, digit_images, mlp_network

BUILT_IN = ["dwa", "equal", "gradnorm", "pcgrad", "uncertainty"]
SCALE = 2.0**12  # the fp16 scaler's factor in the unit tests (a power of two, as GradScaler's always are)
BF16 = TrainConfig(lr=1e-2, epochs=3, batch_size=32, device="cpu", precision="bf16")


@pytest.fixture(scope="module")
def images():
    return digit_images()


def test_every_built_in_weighting_is_covered():
    assert set(BUILT_IN) <= set(WEIGHTINGS)


@pytest.mark.parametrize("weighting", BUILT_IN)
def test_bf16_trains_with_every_weighting(images, weighting):
    """Finite losses that go down, the convolutions computed in bfloat16, parameters kept in float32."""
    model = conv_network()
    seen: set[torch.dtype] = set()
    conv = next(m for m in model.modules() if isinstance(m, torch.nn.Conv2d))
    conv.register_forward_hook(lambda module, args, out: seen.add(out.dtype))
    dtypes: set[torch.dtype] = set()
    result = fit(model, images, TASKS, dataclasses.replace(BF16, weighting=weighting),
                 report=lambda ep: dtypes.update(p.dtype for p in ep.model.parameters()))
    losses = [row["train_loss"] for row in result.history]
    assert all(torch.isfinite(torch.tensor(losses))), losses
    assert losses[-1] < losses[0], f"{weighting}: the training loss did not go down: {losses}"
    assert seen == {torch.bfloat16}, "the forward pass ran outside bf16 autocast"
    assert dtypes == {torch.float32} and all(v.dtype == torch.float32 for v in result.state_dict.values())
    assert result.val["digit"]["accuracy"] > 0.5  # well above chance (0.1) after three short epochs


def test_fp32_runs_no_autocast(images):
    model = conv_network()
    seen: set[torch.dtype] = set()
    next(m for m in model.modules() if isinstance(m, torch.nn.Conv2d)).register_forward_hook(lambda m, a, out: seen.add(out.dtype))
    fit(model, images, TASKS, dataclasses.replace(BF16, precision="fp32", epochs=1))
    assert seen == {torch.float32}


# --------------------------------------------------------------------------- fp16 needs CUDA
def test_fp16_on_a_cpu_device_is_refused_by_name(images):
    with pytest.raises(SpecError, match=r"^train\.precision: fp16 needs a CUDA device.*trains on cpu") as caught:
        fit(mlp_network(), digit_images(flat=True), TASKS, dataclasses.replace(BF16, precision="fp16"))
    assert failure_origin(caught.value) == ORIGIN_USER  # in a trial on a node without CUDA: the user's spec, not a bug
    with pytest.raises(SpecError, match=r"^train\.precision: fp16 needs a CUDA device.*train\.device is cpu"):
        parse_spec(small_spec(train={"precision": "fp16", "device": "cpu"}))


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a GPU: fp16 is allowed here")
def test_run_with_fp16_on_a_machine_without_cuda_exits_2_before_writing(tmp_path, capsys):
    """``device: auto`` resolves to the CPU here: the local run stops before Ray starts or a folder is made."""
    path = write_spec(tmp_path / "s.yaml", small_spec(train={"precision": "fp16"}))
    assert main(["run", str(path), "--out", str(tmp_path / "run")]) == 2
    assert "train.precision: fp16 needs a CUDA device" in capsys.readouterr().err
    assert not (tmp_path / "run").exists()


@pytest.mark.skipif(not torch.cuda.is_available(), reason="fp16 needs a CUDA GPU; CI has none")
@pytest.mark.parametrize("weighting", BUILT_IN)
def test_fp16_trains_on_a_gpu_with_every_weighting(images, weighting):
    result = fit(conv_network(), images, TASKS, dataclasses.replace(BF16, precision="fp16", device="cuda", weighting=weighting))
    losses = [row["train_loss"] for row in result.history]
    assert all(torch.isfinite(torch.tensor(losses))) and losses[-1] < losses[0], losses
    assert all(v.dtype == torch.float32 for v in result.state_dict.values())


# --------------------------------------------------------------------------- loss scaling, on the CPU
def batch_losses(model) -> dict[str, torch.Tensor]:
    """Losses of one fixed batch whose two tasks pull the shared trunk apart (their gradients conflict)."""
    g = torch.Generator().manual_seed(0)  # a batch on which the tasks conflict over the trunk
    x = torch.randn(32, 64, generator=g)
    out = model(x)
    return {"digit": TASKS[0].loss(out["digit"], torch.randint(0, 10, (32,), generator=g).float()),
            "odd": TASKS[1].loss(out["odd"], torch.randint(0, 2, (32,), generator=g).float())}


def gradients(weighting_name: str, loss_scale: LossScale | None, wrap=None) -> tuple[dict[str, torch.Tensor], torch.optim.Optimizer]:
    """One weighting's ``.grad`` of every parameter (and its own), after ``unscale_`` when scaled."""
    model = mlp_network()
    weighting = (wrap or make_weighting)(weighting_name, NAMES, TrainConfig(weighting=weighting_name, seed=1))
    if loss_scale is not None:
        weighting.loss_scale = loss_scale
    params = list(model.parameters())
    optimizer = torch.optim.SGD([{"params": params}, {"params": list(weighting.parameters())}], lr=0.1)
    weighting.backward(batch_losses(model), params, model.shared_parameters())
    if loss_scale is not None:
        loss_scale.unscale_(optimizer)
    named = {f"model.{n}": p.grad for n, p in model.named_parameters()} | {f"weighting.{n}": p.grad for n, p in weighting.named_parameters()}
    return named, optimizer


def cpu_scaler() -> torch.amp.GradScaler:
    return torch.amp.GradScaler("cpu", init_scale=SCALE)


@pytest.mark.parametrize("weighting", BUILT_IN)
def test_every_weighting_leaves_gradients_that_unscale_to_the_fp32_ones(weighting):
    plain, _ = gradients(weighting, None)
    scaled, _ = gradients(weighting, LossScale(cpu_scaler()))
    assert plain.keys() == scaled.keys()
    for name in plain:
        torch.testing.assert_close(scaled[name], plain[name], rtol=1e-5, atol=1e-7, msg=lambda m: f"{weighting} {name}: {m}")


def test_pcgrad_compares_and_projects_unscaled_gradients():
    """The rows PCGrad's projection sees are the per-task gradients in true units, not SCALE times them."""
    seen: dict[str, torch.Tensor] = {}

    class Recording(PCGrad):
        def project(self, original):
            seen.setdefault("rows", original.clone())
            return super().project(original)

    recorded = lambda name, tasks, config: Recording(tasks, config)  # noqa: E731
    gradients("pcgrad", None, wrap=recorded)
    plain = seen.pop("rows")
    gradients("pcgrad", LossScale(cpu_scaler()), wrap=recorded)
    scaled = seen.pop("rows")
    assert (plain[0] @ plain[1]) < 0, "the two tasks' gradients should conflict, so that PCGrad projects"
    torch.testing.assert_close(scaled, plain, rtol=1e-5, atol=1e-8)


def test_gradnorm_measures_unscaled_norms():
    """GradNorm's weights learn from ``|w_t G_t − target|``: with scaled norms their gradient would be SCALE times too large."""
    plain, _ = gradients("gradnorm", None)
    scaled, _ = gradients("gradnorm", LossScale(cpu_scaler()))
    assert plain["weighting.weights"].abs().sum() > 0
    torch.testing.assert_close(scaled["weighting.weights"], plain["weighting.weights"], rtol=1e-5, atol=1e-8)


class SelfMade(Weighting):  # a plugin's weighting that calls backward() itself, knowing nothing of loss scaling
    name = "self_made"

    def backward(self, losses, params, shared):
        total = sum(losses[t] for t in self.tasks)
        total.backward()
        return total.detach()


@pytest.mark.parametrize("clip", [None, 0.05])
def test_a_scaled_step_equals_the_plain_step_with_clipping_after_unscaling(clip):
    """``Precision.step``: the same parameters after one SGD step with and without a scaler,
    clipping included (it must see unscaled gradients), for a built-in and a self-made weighting."""
    for make in (lambda: make_weighting("equal", NAMES, TrainConfig()), lambda: SelfMade(NAMES, TrainConfig())):
        after = []
        for scaler in (None, cpu_scaler()):
            model = mlp_network()
            precision = Precision("fp32", torch.device("cpu"))
            precision.loss_scale = LossScale(scaler)
            weighting = make()
            weighting.loss_scale = precision.loss_scale
            params = list(model.parameters())
            optimizer = torch.optim.SGD(params, lr=0.5)
            weighting.backward(batch_losses(model), params, model.shared_parameters())
            precision.step(optimizer, params, clip)
            after.append({n: p.detach().clone() for n, p in model.named_parameters()})
        moved = sum((after[0][n] - p.detach()).norm() ** 2 for n, p in mlp_network().named_parameters()) ** 0.5
        if clip is not None:  # the step is lr x the clipped norm: 0.5 x 0.05
            assert moved == pytest.approx(0.5 * clip, rel=1e-4)
        for name in after[0]:
            torch.testing.assert_close(after[1][name], after[0][name], rtol=1e-5, atol=1e-7, msg=lambda m: f"{name}: {m}")


def test_an_overflowing_scaled_step_is_skipped_and_the_scale_lowered():
    """An infinite scaled gradient: GradScaler skips the step (parameters unchanged) and halves its factor."""
    model = mlp_network()
    scaler = torch.amp.GradScaler("cpu", init_scale=2.0**126)  # the scaled gradients overflow float32
    precision = Precision("fp32", torch.device("cpu"))
    precision.loss_scale = LossScale(scaler)
    weighting = make_weighting("pcgrad", NAMES, TrainConfig(seed=1))
    weighting.loss_scale = precision.loss_scale
    params = list(model.parameters())
    before = [p.detach().clone() for p in params]
    optimizer = torch.optim.SGD(params, lr=0.5)
    weighting.backward({k: v * 1e6 for k, v in batch_losses(model).items()}, params, model.shared_parameters())
    precision.step(optimizer, params, 1.0)
    assert all(torch.equal(a, p.detach()) for a, p in zip(before, params))
    assert scaler.get_scale() == 2.0**125
