"""``search.confirm`` (the confirmation race): off by default, and each bad value refused
with one line naming its key."""

from __future__ import annotations

import pytest

from share_search.cli import main
from share_search.spec.model import parse_spec
from tests.runs import one_line_error, small_spec, write_spec


def test_confirm_is_off_by_default_and_stays_out_of_a_spec_without_it():
    spec = parse_spec(small_spec())
    assert spec.search.confirm is None and "confirm" not in spec.to_dict()["search"]
    raced = parse_spec(small_spec(search={"confirm": {"top": 3, "max_seeds": 4}}))
    assert (raced.search.confirm.top, raced.search.confirm.max_seeds, raced.search.confirm.alpha) == (3, 4, 0.05)
    assert parse_spec(raced.to_dict()) == raced


@pytest.mark.parametrize("confirm, words", [
    ({"top": 1, "max_seeds": 3}, ("search.confirm.top", "2", "got 1")),
    ({"top": 2, "max_seeds": 1}, ("search.confirm.max_seeds", "got 1")),
    ({"top": 2, "max_seeds": 3, "alpha": 0}, ("search.confirm.alpha", "got 0")),
    ({"top": 2, "max_seeds": 3, "alpha": 1.0}, ("search.confirm.alpha", "got 1")),
    ({"top": 2}, ("search.confirm.max_seeds",)),
    ({"top": 2, "max_seeds": 3, "rounds": 2}, ("search.confirm.rounds",)),
])
def test_bad_confirm_values_are_refused_naming_the_key(tmp_path, capsys, confirm, words):
    spec = write_spec(tmp_path / "s.yaml", small_spec(search={"confirm": confirm}))
    assert main(["validate", str(spec)]) == 2
    one_line_error(capsys, *words)


def test_max_seeds_must_add_seeds_beyond_the_search(tmp_path, capsys):
    spec = write_spec(tmp_path / "s.yaml", small_spec(search={"repeats": 3, "confirm": {"top": 2, "max_seeds": 3}}))
    assert main(["validate", str(spec)]) == 2
    one_line_error(capsys, "search.confirm.max_seeds", "search.repeats", "got 3")


def test_the_race_needs_the_single_task_networks(tmp_path, capsys):
    spec = write_spec(tmp_path / "s.yaml", small_spec(search={"baselines": False, "objective": "per_task", "confirm": {"top": 2, "max_seeds": 3}}))
    assert main(["validate", str(spec)]) == 2
    one_line_error(capsys, "search.confirm", "baselines")
