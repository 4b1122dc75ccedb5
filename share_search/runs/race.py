"""The rule of the confirmation race: after each round of seeds, which candidates are
clearly worse than the leader and leave the race.

Racing follows F-race and irace (Birattari et al. 2002, "A Racing Algorithm for Configuring
Metaheuristics", GECCO; López-Ibáñez et al. 2016, "The irace package", Operations Research
Perspectives): every candidate left gets the same new seeds, and after each round a
statistical test drops those the seeds already separate from the best. The test here is
the one the leaderboard states ties with (``uncertainty.paired_p_value``: Student's paired
t-test, two-sided, over the seeds both share), because a seed fixes the initial weights'
generator and the data order of both networks alike, so pairing by seed removes what the
seed does to both. The leader is the best mean over the seeds every survivor has; a
candidate is dropped when its mean is worse and the test separates it at ``alpha``. No
correction for the several comparisons of a round is made (irace's ``t-test`` option makes
none either): a wrongly dropped candidate is one the seeds put behind the leader, and a
candidate tied with the leader is never dropped.

Pure functions on numbers: the search runs the rounds (``engine``), the benchmarks replay
them on a table.
"""

from __future__ import annotations

import math
from typing import Hashable, Mapping, NamedTuple, TypeVar

from .uncertainty import mean_and_se, paired_p_value

K = TypeVar("K", bound=Hashable)


class RoundOutcome(NamedTuple):
    leader: Hashable
    survivors: list  # best mean first, the leader included
    dropped: dict  # candidate -> the p-value that separated it from the leader


def race_round(values: Mapping[K, Mapping[int, float]], alpha: float, higher_is_better: bool = True) -> RoundOutcome:
    """Judge one round: ``values`` maps each candidate still racing to its per-seed values
    (seed or repeat -> value, e.g. paired Δm). Only the seeds every candidate has count, so
    a candidate is never judged on seeds the others lack. With fewer than two shared seeds,
    or a NaN among them, nothing is dropped."""
    if not values:
        raise ValueError("race_round needs at least one candidate")
    shared = set.intersection(*(set(v) for v in values.values()))
    on_shared = {k: {s: float(v[s]) for s in shared} for k, v in values.items()}
    sign = 1.0 if higher_is_better else -1.0
    means = {k: mean_and_se(list(v.values())).mean for k, v in on_shared.items()}
    order = sorted(on_shared, key=lambda k: (math.isnan(means[k]), -sign * means[k] if not math.isnan(means[k]) else 0.0))
    leader = order[0]
    dropped = {}
    for k in order[1:]:
        p = paired_p_value(on_shared[leader], on_shared[k])
        if not math.isnan(p) and p < alpha and sign * (means[leader] - means[k]) > 0:
            dropped[k] = p
    return RoundOutcome(leader, [k for k in order if k not in dropped], dropped)


def race_is_over(survivors: int, seeds_each: int, max_seeds: int) -> bool:
    """A race ends when one candidate is left or every survivor has ``max_seeds`` seeds."""
    return survivors <= 1 or seeds_each >= max_seeds
