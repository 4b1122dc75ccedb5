"""The training loop on sklearn's 8x8 digits: learning, seeding, masking, selection, phases."""

import dataclasses
import json

import numpy as np
import pytest
import torch
from sklearn.datasets import load_digits
from torch import nn

from share_search.arch import ArchConfig, MultiTaskModel, Phase
from share_search.data import Dataset, LabelInfo, Split
from share_search.errors import ShareSearchError
from share_search.train.tasks import Task
from share_search.train.loop import TrainConfig, TrainingDiverged, fit, resolve_device
from share_search.train.weighting import WEIGHTINGS

TASKS = (
    Task("digit", "digit", "multiclass", 10, "accuracy"),
    Task("odd", "odd", "binary", 1, "accuracy", extra_metrics=("auc",)),
)
FAST = TrainConfig(lr=1e-2, epochs=4, batch_size=64, device="cpu")


@pytest.fixture(scope="module")
def digits() -> Dataset:
    x, y = load_digits(return_X_y=True)
    x = (x / 16.0).astype(np.float32)
    order = np.random.default_rng(0).permutation(len(x))
    parts = np.split(order, [int(0.6 * len(x)), int(0.8 * len(x))])
    splits = [Split(x[i], {"digit": y[i].astype(np.float32), "odd": (y[i] % 2).astype(np.float32)}) for i in parts]
    labels = {"digit": LabelInfo("multiclass", 10), "odd": LabelInfo("binary", 1)}
    return Dataset("digits", (64,), labels, *splits)


def with_labels(data: Dataset, split: str, **labels) -> Dataset:
    old = data.split(split)
    return dataclasses.replace(data, **{split: Split(old.x, {**old.y, **labels})})


class TwoHeads(MultiTaskModel):
    """Hard parameter sharing: an MLP trunk and one linear head per task."""

    def __init__(self, hidden: int = 32):
        super().__init__(ArchConfig(), [t.name for t in TASKS])
        self.trunk = nn.Sequential(nn.Linear(64, hidden), nn.ReLU())
        self.heads = nn.ModuleDict({t.name: nn.Linear(hidden, t.n_outputs) for t in TASKS})

    def forward(self, x):
        h = self.trunk(x)
        return {name: head(h) for name, head in self.heads.items()}

    def shared_parameters(self):
        return list(self.trunk.parameters())


def two_heads(seed: int = 0) -> TwoHeads:
    torch.manual_seed(seed)
    return TwoHeads()


def same_state(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


@pytest.mark.parametrize("weighting", sorted(WEIGHTINGS))
def test_learns_digits_with_every_weighting(digits, weighting):
    result = fit(two_heads(), digits, TASKS, dataclasses.replace(FAST, weighting=weighting))
    assert result.val["digit"]["accuracy"] >= 0.9
    assert result.val["odd"]["accuracy"] >= 0.85
    assert set(result.test) == {"digit", "odd"} and set(result.test["odd"]) == {"accuracy", "auc"}
    assert [row["epoch"] for row in result.history] == [1, 2, 3, 4]
    assert result.history[result.best_epoch - 1]["is_best"]
    assert all(v.device.type == "cpu" for v in result.state_dict.values())
    json.dumps(result.weighting_state)
    assert set(result.weighting_state) == {"all"}


@pytest.mark.parametrize("weighting", ["equal", "pcgrad"])
def test_same_seed_same_result_even_after_other_fits(digits, weighting):
    config = dataclasses.replace(FAST, weighting=weighting, epochs=2)
    first = fit(two_heads(), digits, TASKS, config)
    other = fit(two_heads(), digits, TASKS, dataclasses.replace(config, seed=1))
    again = fit(two_heads(), digits, TASKS, config)
    assert first.history == again.history
    assert same_state(first.state_dict, again.state_dict)
    assert not same_state(first.state_dict, other.state_dict)  # the seed drives the shuffling


def test_rows_without_labels_change_nothing(digits):
    """Rows labelled for no task must train exactly like a dataset without those rows."""
    n = len(digits.train)
    unlabelled = np.arange(n) % 2 == 1
    nan = lambda y: np.where(unlabelled, np.nan, y).astype(np.float32)  # noqa: E731
    masked = with_labels(digits, "train", digit=nan(digits.train.y["digit"]), odd=nan(digits.train.y["odd"]))
    kept = ~unlabelled
    removed = dataclasses.replace(
        digits, train=Split(digits.train.x[kept], {k: v[kept] for k, v in digits.train.y.items()})
    )
    config = dataclasses.replace(FAST, epochs=2, batch_size=n)  # one batch per epoch: order cannot matter
    a = fit(two_heads(), masked, TASKS, config)
    b = fit(two_heads(), removed, TASKS, config)
    for k in a.state_dict:
        torch.testing.assert_close(a.state_dict[k], b.state_dict[k], rtol=1e-4, atol=1e-5)


def test_validation_metrics_ignore_unlabelled_rows(digits):
    odd = digits.val.y["odd"].copy()
    odd[::2] = np.nan
    data = with_labels(digits, "val", odd=odd)
    result = fit(two_heads(), data, TASKS, dataclasses.replace(FAST, epochs=1))
    model = two_heads()
    model.load_state_dict(result.state_dict)
    with torch.no_grad():
        predicted = (model(torch.as_tensor(data.val.x))["odd"].reshape(-1) > 0).numpy()
    keep = ~np.isnan(odd)
    assert result.val["odd"]["accuracy"] == pytest.approx(float((predicted[keep] == odd[keep]).mean()))


def test_report_once_per_epoch_and_best_weights_are_returned(digits):
    reports, checkpoints = [], {}

    def report(r):
        reports.append(r)
        if r.is_best:  # a caller that saves on is_best gets the weights fit returns
            checkpoints[r.epoch] = {k: v.clone() for k, v in r.model.state_dict().items()}

    result = fit(two_heads(), digits, TASKS, dataclasses.replace(FAST, epochs=3), report=report)
    assert [r.epoch for r in reports] == [1, 2, 3]
    assert reports[0].is_best
    assert [r.is_best for r in reports] == [row["is_best"] for row in result.history]
    assert result.best_epoch == max(checkpoints)
    assert same_state(result.state_dict, checkpoints[result.best_epoch])
    assert result.val == reports[result.best_epoch - 1].val
    assert reports[0].val["digit"]["accuracy"] == result.history[0]["digit.accuracy"]


def test_patience_stops_when_validation_only_gets_worse(digits):
    # Validation labels that contradict training: learning more makes validation worse.
    data = with_labels(
        digits, "val", digit=(digits.val.y["digit"] + 1) % 10, odd=1 - digits.val.y["odd"]
    )
    reports = []
    result = fit(two_heads(), data, TASKS, dataclasses.replace(FAST, epochs=10, patience=2), report=reports.append)
    assert [row["epoch"] for row in result.history] == [1, 2, 3]
    assert [r.is_best for r in reports] == [True, False, False]
    assert result.best_epoch == 1
    assert result.val == reports[0].val  # the weights went back to epoch 1


def test_nan_output_raises_training_diverged(digits):
    class NaNOdd(TwoHeads):
        def forward(self, x):
            out = super().forward(x)
            return {**out, "odd": out["odd"] * float("nan")}

    torch.manual_seed(0)
    with pytest.raises(TrainingDiverged, match=r"epoch 1 \(phase 'all'\): non-finite loss for odd = nan") as info:
        fit(NaNOdd(), digits, TASKS, FAST)
    assert isinstance(info.value, ShareSearchError) and info.value.values.keys() == {"odd"}


def test_lr_multiplier_zero_freezes_a_group(digits):
    class SlowOdd(TwoHeads):
        def phases(self):
            rest = [p for n, p in self.named_parameters() if not n.startswith("heads.odd")]
            return [Phase(self.task_names, [(rest, 1.0), (list(self.heads["odd"].parameters()), 0.0)])]

    model = two_heads()
    model.__class__ = SlowOdd
    before = {k: v.clone() for k, v in model.state_dict().items()}
    after = fit(model, digits, TASKS, dataclasses.replace(FAST, epochs=1)).state_dict
    assert torch.equal(after["heads.odd.weight"], before["heads.odd.weight"])
    assert not torch.equal(after["trunk.0.weight"], before["trunk.0.weight"])


class TwoColumns(MultiTaskModel):
    """A hand-made progressive pair: the odd column also reads the digit column's features."""

    def __init__(self):
        super().__init__(ArchConfig(), [t.name for t in TASKS])
        self.digit_column = nn.Sequential(nn.Linear(64, 32), nn.ReLU(), nn.BatchNorm1d(32))
        self.digit_head = nn.Linear(32, 10)
        self.odd_column = nn.Sequential(nn.Linear(64, 16), nn.ReLU())
        self.odd_head = nn.Linear(16 + 32, 1)
        self.phases_begun = []

    def forward(self, x):
        h = self.digit_column(x)
        return {"digit": self.digit_head(h), "odd": self.odd_head(torch.cat([self.odd_column(x), h], dim=1))}

    def phases(self):
        digit = [*self.digit_column.parameters(), *self.digit_head.parameters()]
        odd = [*self.odd_column.parameters(), *self.odd_head.parameters()]
        return [
            Phase(("digit",), [(digit, 1.0)], "digit", frozen=[self.odd_column, self.odd_head]),
            Phase(("odd",), [(odd, 1.0)], "odd", frozen=[self.digit_column, self.digit_head]),
        ]

    def begin_phase(self, index):
        self.phases_begun.append(index)


def test_phases_train_in_order_with_earlier_columns_frozen(digits):
    torch.manual_seed(0)
    model = TwoColumns()
    seen = []

    def report(r):
        state = r.model.state_dict()
        column = (state["digit_column.0.weight"].clone(), state["digit_column.2.running_mean"].clone())
        seen.append((r.epoch, r.phase, list(r.model.phases_begun), *column))

    result = fit(model, digits, TASKS, dataclasses.replace(FAST, epochs=3, weighting="uncertainty"), report=report)
    assert [(e, p, b) for e, p, b, _, _ in seen] == [
        (1, "digit", [0]), (2, "digit", [0]), (3, "digit", [0]), (4, "odd", [0, 1]), (5, "odd", [0, 1]), (6, "odd", [0, 1])
    ]
    digit_best = result.best_epochs["digit"]
    assert digit_best in (1, 2, 3) and result.best_epochs["odd"] in (4, 5, 6)
    # Throughout phase 2 the digit column holds its own best weights (and BatchNorm statistics).
    for _, _, _, weight, running_mean in seen[3:]:
        assert torch.equal(weight, seen[digit_best - 1][3])
        assert torch.equal(running_mean, seen[digit_best - 1][4])
    assert torch.equal(result.state_dict["digit_column.0.weight"], seen[digit_best - 1][3])
    assert result.val["digit"]["accuracy"] >= 0.9 and result.val["odd"]["accuracy"] >= 0.85
    assert set(result.weighting_state) == {"digit", "odd"}
    assert set(result.weighting_state["odd"]["log_vars"]) == {"odd"}
    assert all(p.requires_grad for p in model.parameters())  # freezing is undone


def test_device_resolution():
    assert resolve_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")
    assert resolve_device("cpu").type == "cpu"
    if not torch.cuda.is_available():
        with pytest.raises(ShareSearchError, match="sees no CUDA device"):
            resolve_device("cuda")
    with pytest.raises(ValueError, match="must be >= 1, got 0"):
        TrainConfig(epochs=0)
