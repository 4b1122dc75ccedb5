"""The progressive family's search space: sampling, its inverse, enumeration and size (``space.progressive``)."""
import itertools
import math

import optuna
import pytest
import torch

from share_search.arch.progressive import ProgressiveOptions
from share_search.spec.registry import get_family_space
from share_search.errors import SpecError
from share_search.spec.model import parse_spec

from ..arch.shared import NAMES
from .roundtrip import assert_decode_inverts_to_params, sample_randomly

torch.set_num_threads(1)
optuna.logging.set_verbosity(optuna.logging.WARNING)

SPACE = get_family_space("progressive")
ORDER = ("odd", "coords", "digit")


@pytest.mark.parametrize("options", [{}, {"order": ["coords", "digit", "odd"], "lateral": "linear"}, {"stages": [2]}])
def test_decode_inverts_to_params_over_the_whole_space(options):
    options = ProgressiveOptions.model_validate(options)
    assert_decode_inverts_to_params(SPACE, NAMES, 4, options)


def test_space_is_every_order_times_every_lateral_placement_and_kind():
    configs = SPACE.enumerate(NAMES, 4, ProgressiveOptions())
    assert len(configs) == math.factorial(3) * (2**3 - 1) * 2
    assert {c.order for c in configs} == set(itertools.permutations(NAMES))
    fixed = ProgressiveOptions(order=["odd", "digit", "coords"], stages=[1, 3], lateral="adapter")
    assert SPACE.space_size(NAMES, 4, fixed) == 3


def test_sampling_reaches_every_order_with_fixed_distributions():
    configs, distributions = sample_randomly(SPACE, NAMES, 3, ProgressiveOptions())
    seen = {c.order for c in configs}
    assert seen == set(itertools.permutations(NAMES))
    assert set(distributions) == {
        "progressive.order",
        "progressive.lateral_stage1",
        "progressive.lateral_stage2",
        "progressive.lateral",
    }
    assert "odd > coords > digit" in distributions["progressive.order"].choices


def test_options_reject_orders_it_cannot_search():
    with pytest.raises(SpecError, match="families.progressive.order"):
        SPACE.enumerate(NAMES, 3, ProgressiveOptions(order=["odd", "digit"]))
    many = [f"t{i}" for i in range(7)]
    with pytest.raises(SpecError, match="5,040 orders"):
        SPACE.enumerate(many, 3, ProgressiveOptions())
    assert SPACE.space_size(many, 2, ProgressiveOptions(order=many, lateral="linear")) == 1
    with pytest.raises(SpecError, match="at least 2 stages"):
        SPACE.enumerate(NAMES, 1, ProgressiveOptions())
    spec = {"name": "s", "data": {"source": "digits"}, "tasks": {"a": {}, "b": {}}}
    parsed = parse_spec({**spec, "families": {"progressive": {"order": ["b", "a"], "lateral": "linear"}}})
    assert parse_spec(parsed.to_dict()).families == parsed.families
    assert ProgressiveOptions().model_dump(mode="json")["lateral"] == ["linear", "adapter"]
