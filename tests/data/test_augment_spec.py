"""``data.augment`` in the spec (issue 18, item 4): what it accepts, and a one-line error naming
``data.augment.<key>`` for what it refuses, through ``parse_spec`` and ``share-search validate``."""

from __future__ import annotations

import pytest

from share_search.cli import main
from share_search.errors import SpecError
from share_search.spec.model import parse_spec
from tests.runs import file_tree, one_line_error, small_spec, write_spec


def with_augment(augment) -> dict:
    return small_spec(data={"augment": augment})


def test_the_issue_s_example_is_read_and_round_trips_through_the_resolved_spec():
    from share_search.spec.model import AugmentSpec  # here, so that on a main without it only this test fails to import it

    spec = parse_spec(with_augment({"hflip": True, "crop": [256, 320], "scale": [0.75, 1.25]}))
    assert spec.data.augment == AugmentSpec(hflip=True, crop=(256, 320), scale=(0.75, 1.25))
    assert spec.data.augment.active
    assert spec.to_dict()["data"]["augment"] == {"hflip": True, "crop": [256, 320], "scale": [0.75, 1.25], "depth_follows_scale": True}
    assert parse_spec(spec.to_dict()) == spec  # spec.resolved.yaml reads back as the same spec
    assert "crop:\n    - 256\n    - 320" in spec.to_yaml()  # safe YAML: lists, not Python tuples


@pytest.mark.parametrize("augment", [None, {}, {"hflip": False}])
def test_absent_or_empty_augment_changes_nothing(augment):
    spec = parse_spec(with_augment(augment))
    assert spec.data.augment is None or not spec.data.augment.active


def test_a_scale_of_equal_bounds_is_a_fixed_factor():
    assert parse_spec(with_augment({"scale": [0.5, 0.5]})).data.augment.scale == (0.5, 0.5)


# (id, data.augment as written, expected SpecError.path, words in the message)
REFUSED = [
    ("not-a-mapping", True, "data.augment", "expected a mapping such as {hflip: true, crop: [H, W], scale: [0.75, 1.25]}, got True"),
    ("a-list", [256, 320], "data.augment", "expected a mapping"),
    ("unknown-key", {"flip": True}, "data.augment.flip", "unknown key 'flip', did you mean 'hflip'?"),
    ("typo-beside-good-keys", {"crop": [8, 8], "sclae": [1, 2]}, "data.augment.sclae", "did you mean 'scale'?"),
    ("hflip-number", {"hflip": 1}, "data.augment.hflip", "valid boolean, got 1"),
    ("hflip-text", {"hflip": "sometimes"}, "data.augment.hflip", "valid boolean, got 'sometimes'"),
    ("crop-zero", {"crop": [0, 320]}, "data.augment.crop", "expected [height, width], two positive integers (pixels), got [0, 320]"),
    ("crop-negative", {"crop": [256, -1]}, "data.augment.crop", "got [256, -1]"),
    ("crop-one-number", {"crop": 256}, "data.augment.crop", "expected [height, width]"),
    ("crop-three-numbers", {"crop": [1, 2, 3]}, "data.augment.crop", "got [1, 2, 3]"),
    ("crop-fraction", {"crop": [0.5, 0.5]}, "data.augment.crop", "two positive integers"),
    ("crop-boolean", {"crop": [True, 8]}, "data.augment.crop", "got [True, 8]"),
    ("scale-reversed", {"scale": [1.25, 0.75]}, "data.augment.scale", "expected [low, high] with 0 < low <= high <= 4, got [1.25, 0.75]"),
    ("scale-zero", {"scale": [0, 1]}, "data.augment.scale", "0 < low"),
    ("scale-negative", {"scale": [-1, 1]}, "data.augment.scale", "got [-1, 1]"),
    ("scale-typo-125", {"scale": [0.75, 125]}, "data.augment.scale", "high <= 4, got [0.75, 125]"),
    ("scale-one-number", {"scale": 1.25}, "data.augment.scale", "expected [low, high]"),
    ("scale-text", {"scale": ["a", "b"]}, "data.augment.scale", "got ['a', 'b']"),
    ("scale-infinite", {"scale": [1, float("inf")]}, "data.augment.scale", "got [1, inf]"),
]


@pytest.mark.parametrize("augment,path,words", [r[1:] for r in REFUSED], ids=[r[0] for r in REFUSED])
def test_bad_augment_names_its_key(augment, path, words):
    with pytest.raises(SpecError) as caught:
        parse_spec(with_augment(augment))
    assert caught.value.path == path, str(caught.value)
    assert words in caught.value.message, str(caught.value)


def test_validate_refuses_a_bad_crop_in_one_line_and_writes_nothing(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    spec_file = write_spec(tmp_path / "s.yaml", with_augment({"hflip": True, "crop": [0, 320]}))
    before = file_tree(tmp_path)
    assert main(["validate", str(spec_file)]) == 2
    one_line_error(capsys, "data.augment.crop: expected [height, width], two positive integers (pixels), got [0, 320]")
    assert file_tree(tmp_path) == before
