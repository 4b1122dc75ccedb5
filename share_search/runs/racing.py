"""The confirmation race as the study records it: its rounds replayed from the stored seeds,
the order it gives the top of the leaderboard, and what it cost.

The race keeps no state of its own beside its trials: every race trial (user attribute
``race``) names the candidate it adds a seed to and the race's setup, and its seeds are
folded into that candidate (``record.fold_race_seeds``). Replaying ``race.race_round`` on
the candidates' per-seed paired Δm round by round gives who was dropped when, who is left
and whether the race is over, so the engine resumes a race from the same replay the
leaderboard and the report read. No Ray and no torch.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

from .race import race_is_over, race_round
from .rank import delta_m, delta_m_terms
from .record import INTERRUPTED, TrialRecord, baseline_of
from .uncertainty import Spread, mean_and_se

RACE_TEST = (
    "a two-sided paired t-test by seed (Student's, each seed's Δm against the single-task networks of the same seed) "
    "against the round's leader, with no correction for the round's several comparisons (as irace's t-test; "
    "Birattari et al. 2002, López-Ibáñez et al. 2016)"
)


@dataclass(frozen=True)
class RaceRound:
    number: int  # 1, 2, ...
    seeds: int  # the seeds each candidate of the round is judged on
    spreads: Mapping[int, Spread]  # candidate -> mean ± standard error of its per-seed Δm over those seeds
    leader: int
    dropped: Mapping[int, float]  # candidate -> the p-value that separated it from the leader
    failed: Sequence[int] = ()  # candidates whose seed of this round failed: out of the race


@dataclass(frozen=True)
class RaceStanding:
    candidates: list[int]
    baseline: int
    start_seeds: int  # the seeds each candidate had from the search (search.repeats)
    max_seeds: int
    alpha: float
    rounds: list[RaceRound]
    survivors: list[int]  # still racing (or left at the end), best mean first: the leader first
    finished: bool
    compute: Mapping[str, float] = field(default_factory=dict)  # seeds, trial_epochs, seconds the race trained

    @property
    def leader(self) -> int | None:
        return self.survivors[0] if self.rounds and self.survivors else None

    def next_round(self) -> int:
        return len(self.rounds) + 1

    def summary(self) -> dict[str, Any]:
        """JSON-safe, for the study's user attribute, the run summary and the model card."""
        return {
            "candidates": self.candidates, "alpha": self.alpha, "max_seeds": self.max_seeds, "start_seeds": self.start_seeds,
            "rounds": len(self.rounds), "finished": self.finished, "leader": self.leader, "survivors": self.survivors,
            "dropped": {str(c): {"round": r.number, "p": p} for r in self.rounds for c, p in r.dropped.items()},
            "failed": {str(c): r.number for r in self.rounds for c in r.failed},
            **{k: v for k, v in self.compute.items()},
        }

    def line(self) -> str:
        """One line for the run summary and the model card."""
        state = "finished" if self.finished else "NOT finished (continue with --resume)"
        dropped = ", ".join(f"{c} (round {r.number}, p = {p:.3g})" for r in self.rounds for c, p in r.dropped.items()) or "none"
        c = self.compute
        return (f"confirmation race {state}: candidates {', '.join(map(str, self.candidates))}; {len(self.rounds)} round(s), "
                f"leader trial {self.leader}, left {', '.join(map(str, self.survivors))}; dropped {dropped} (α = {self.alpha}); "
                f"compute {int(c.get('seeds', 0))} seed trainings, {int(c.get('trial_epochs', 0))} trial-epochs, {c.get('seconds', 0.0):.1f} s of training")


SETUP_KEYS = ("candidates", "baseline", "start_seeds", "max_seeds", "alpha")  # beside a race trial's own "of", "round", "pairing"


def race_setup(records: Sequence[TrialRecord]) -> dict[str, Any] | None:
    """The setup every race trial carries (candidates, baseline, seeds, α), None without a race."""
    race = next((r.race for r in records if r.race is not None and "candidates" in r.race), None)
    return None if race is None else {key: race[key] for key in SETUP_KEYS}


def per_seed_delta_m(record: TrialRecord, baseline: TrialRecord, tasks: Sequence, convention: str, upto: int) -> dict[int, float]:
    """Paired Δm of each COMPLETE seed of ``record`` below repeat ``upto`` that the baseline has too."""
    terms = delta_m_terms(tasks, convention).higher_is_better
    mine, base = record.completed_seeds(), baseline.completed_seeds()
    return {r: delta_m(mine[r].val, base[r].val, terms) for r in range(upto) if r in mine and r in base}


def race_standing(records: Sequence[TrialRecord], tasks: Sequence, convention: str) -> RaceStanding | None:
    """Replay the race stored in ``records`` (folded, as ``study_records`` gives them): every
    round whose candidates all have their seed (or failed it) is judged with ``race_round``;
    the first round that lacks a seed is where a resumed race goes on."""
    setup = race_setup(records)
    base = baseline_of(records)
    if setup is None or base is None:
        return None
    rows = {r.number: r for r in records if r.race is None}
    candidates = [int(c) for c in setup["candidates"] if int(c) in rows]
    k, most, alpha = int(setup["start_seeds"]), int(setup["max_seeds"]), float(setup["alpha"])
    failed_in = {(r.race["of"], r.race.get("round")) for r in records
                 if r.race is not None and r.state == "FAIL" and r.failure is not None and r.failure.reason != INTERRUPTED}
    survivors, rounds, finished = list(candidates), [], False
    while not finished:
        j = len(rounds) + 1
        upto = k + j
        failed = [c for c in survivors if (c, j) in failed_in]
        left = [c for c in survivors if c not in failed]
        values = {c: per_seed_delta_m(rows[c], base, tasks, convention, upto) for c in left}
        if upto > most or any(len(v) < upto for v in values.values()):
            break  # this round's seeds are not all there yet
        if not left:
            rounds.append(RaceRound(j, upto, {}, -1, {}, failed))
            survivors, finished = [], True
            break
        outcome = race_round(values, alpha)
        rounds.append(RaceRound(j, upto, {c: mean_and_se(list(v.values())) for c, v in values.items()}, outcome.leader, outcome.dropped, failed))
        survivors = list(outcome.survivors)
        finished = race_is_over(len(survivors), upto, most)
    return RaceStanding(candidates, base.number, k, most, alpha, rounds, survivors, finished, race_compute(records, k))


def race_compute(records: Sequence[TrialRecord], start_seeds: int) -> dict[str, float]:
    """What the race trained: each seed once (a race trial holds copies of earlier seeds, and a
    retry the seeds its interrupted trial kept), failed ones included; trial-epochs are the
    epochs each seed trained (its history's last epoch), seconds its training time."""
    trained: dict[tuple[int, int], Any] = {}
    for r in records:
        if r.race is None:
            continue
        for seed in r.seeds or ():
            if seed.repeat >= start_seeds and seed.state != "PRUNED":
                trained.setdefault((r.race["of"], seed.repeat), seed)
    epochs = sum(int(s.history[-1].get("epoch", 0)) if s.history else 0 for s in trained.values())
    return {"seeds": len(trained), "trial_epochs": epochs, "seconds": math.fsum(s.time_s or 0.0 for s in trained.values())}


def race_order(standing: RaceStanding | None) -> list[int]:
    """The trials the race puts first on the leaderboard: its leader, then the others left,
    best mean first (empty before a round was judged)."""
    return list(standing.survivors) if standing is not None and standing.rounds else []
