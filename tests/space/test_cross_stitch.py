"""The cross_stitch family's search space: sampling, its inverse, enumeration and size (``space.cross_stitch``)."""

import optuna
import pytest
import torch

from share_search.arch.cross_stitch import CrossStitchOptions
from share_search.spec.registry import get_family_space
from share_search.errors import SpecError
from share_search.spec.model import parse_spec

from ..arch.shared import NAMES
from .roundtrip import assert_decode_inverts_to_params, sample_randomly

torch.set_num_threads(1)
optuna.logging.set_verbosity(optuna.logging.WARNING)

SPACE = get_family_space("cross_stitch")

OPTIONS = {
    "default": {},
    "choices": {"alpha_self": [0.8, 0.95], "alpha_lr_mult": 5, "stages": [1, 2]},
    "fixed": {"alpha_self": 0.9, "alpha_lr_mult": [1, 100]},
}


@pytest.mark.parametrize("which", sorted(OPTIONS))
def test_decode_inverts_to_params_over_the_whole_space(which):
    options = CrossStitchOptions.model_validate(OPTIONS[which])
    assert_decode_inverts_to_params(SPACE, NAMES, 3, options)


def test_space_is_every_non_empty_unit_placement():
    assert SPACE.space_size(NAMES, 4, CrossStitchOptions()) == 2**4 - 1
    options = CrossStitchOptions.model_validate(OPTIONS["choices"])  # 3 placements x 2 alpha starts
    assert SPACE.space_size(NAMES, 3, options) == 3 * 2


def test_sampling_reaches_every_placement_with_fixed_distributions():
    configs, distributions = sample_randomly(SPACE, NAMES, 3, CrossStitchOptions())
    seen = {c.stages for c in configs}
    assert seen == {cfg.stages for cfg in SPACE.enumerate(NAMES, 3, CrossStitchOptions())}
    assert set(distributions) == {
        "cross_stitch.after_stage0",
        "cross_stitch.after_stage1",
        "cross_stitch.after_stage2",
        "cross_stitch.alpha_self",
        "cross_stitch.alpha_lr_mult",
    }


def test_options_validate_and_dump_as_written():
    options = CrossStitchOptions.model_validate({"alpha_self": {"low": 0.7, "high": 0.9}, "alpha_lr_mult": [1, 10]})
    assert options.model_dump(mode="json") == {
        "stages": None,
        "alpha_self": {"low": 0.7, "high": 0.9, "log": False},
        "alpha_lr_mult": [1.0, 10.0],
    }
    assert CrossStitchOptions.model_validate(options.model_dump(mode="json")) == options
    spec = {"name": "s", "data": {"source": "digits"}, "tasks": {"a": {}, "b": {}}}
    parsed = parse_spec({**spec, "families": {"cross_stitch": {"alpha_self": [0.8, 0.9], "stages": [1]}}})
    assert parse_spec(parsed.to_dict()).families == parsed.families
    with pytest.raises(SpecError, match=r"families.cross_stitch.alpha_self: must be a mixing weight in \[0, 1\], got 1.5"):
        parse_spec({**spec, "families": {"cross_stitch": {"alpha_self": 1.5}}})
    with pytest.raises(SpecError, match="families.cross_stitch.stages"):
        SPACE.enumerate(NAMES, 3, CrossStitchOptions(stages=[3]))
