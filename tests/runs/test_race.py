"""The race's drop rule against scipy's paired t-test on hand-made per-seed values."""

from __future__ import annotations

import math

import pytest
from scipy.stats import ttest_rel

from share_search.runs.race import race_is_over, race_round

LEADER = {0: 5.0, 1: 6.0, 2: 5.5, 3: 6.2}
TIED = {0: 5.3, 1: 5.6, 2: 5.9, 3: 5.8}  # differences to LEADER change sign
WORSE = {0: 1.0, 1: 2.1, 2: 1.4, 3: 2.0}  # about 4 points below on every seed


def test_a_clearly_worse_candidate_is_dropped_and_a_tied_one_kept():
    outcome = race_round({"tied": TIED, "leader": LEADER, "worse": WORSE}, alpha=0.05)
    assert outcome.leader == "leader"
    assert outcome.survivors == ["leader", "tied"]
    expected = ttest_rel([LEADER[s] for s in range(4)], [WORSE[s] for s in range(4)]).pvalue
    assert set(outcome.dropped) == {"worse"} and outcome.dropped["worse"] == pytest.approx(expected)
    assert ttest_rel([LEADER[s] for s in range(4)], [TIED[s] for s in range(4)]).pvalue >= 0.05


def test_lower_is_better_turns_the_order():
    outcome = race_round({"a": LEADER, "b": WORSE}, alpha=0.05, higher_is_better=False)
    assert outcome.leader == "b" and outcome.survivors == ["b"] and set(outcome.dropped) == {"a"}


def test_only_shared_seeds_are_judged():
    # seed 9 would make "worse" the leader if it counted; it is not shared
    outcome = race_round({"leader": LEADER, "worse": {**WORSE, 9: 100.0}}, alpha=0.05)
    assert outcome.leader == "leader" and "worse" in outcome.dropped


def test_one_shared_seed_or_a_nan_drops_nothing():
    assert race_round({"a": {0: 1.0}, "b": {0: 9.0}}, alpha=0.05).dropped == {}
    outcome = race_round({"a": LEADER, "b": {**WORSE, 2: math.nan}}, alpha=0.05)
    assert outcome.dropped == {} and outcome.survivors[-1] == "b"


def test_a_stricter_level_keeps_more():
    p = race_round({"leader": LEADER, "worse": WORSE}, alpha=0.05).dropped["worse"]
    assert race_round({"leader": LEADER, "worse": WORSE}, alpha=p / 2).dropped == {}


def test_the_race_ends_with_one_survivor_or_at_max_seeds():
    assert race_is_over(1, 2, 5) and race_is_over(3, 5, 5)
    assert not race_is_over(2, 4, 5)
