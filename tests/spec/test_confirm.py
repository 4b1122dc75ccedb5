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
    raced = parse_spec(small_spec(search={"trials": 20, "confirm": {"top": 3, "max_seeds": 4}}))
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


def test_the_race_s_worst_case_counts_against_search_trials(tmp_path, capsys):
    """(top + 1) x (max_seeds - repeats) seed trainings are kept from the budget, in trials of ``repeats`` seeds."""
    spec = parse_spec(small_spec(search={"trials": 20, "repeats": 2, "confirm": {"top": 3, "max_seeds": 5}}))
    assert spec.search.confirm.most_seed_trainings(2) == 12 and spec.search.race_reserve == 6 and spec.search.searched_trials == 14
    assert parse_spec(small_spec(search={"trials": 20})).search.searched_trials == 20
    path = write_spec(tmp_path / "s.yaml", spec.to_dict())
    assert main(["validate", str(path)]) == 0
    printed = " ".join(capsys.readouterr().out.split())  # as one line, however the console wrapped it
    assert "20 trials: 14 searched (the references included), 6 kept for the confirmation race (up to 12 seed trainings)" in printed


def test_too_few_trials_for_the_race_are_refused_naming_search_trials(tmp_path, capsys):
    spec = write_spec(tmp_path / "s.yaml", small_spec(search={"trials": 10, "confirm": {"top": 3, "max_seeds": 3}}))
    assert main(["validate", str(spec)]) == 2
    one_line_error(capsys, "search.trials", "8 seeds", "leaves 2 of 10", "fewer than 3", "at least 11")
