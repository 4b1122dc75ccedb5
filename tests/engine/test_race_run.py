"""The confirmation race (``search.confirm``) in a real ``share-search run``, interrupted in
the middle of the race and resumed: one run shared by every test of this module.

The search (sampler ``race_replay``, ``tests/engine/race_plugin.py``) trains the two
references and two searched trials: a twin of the hard-sharing reference (same architecture,
values and seeds: tied by construction) and a copy with a useless learning rate (clearly
worse). The race takes all four (``top: 4``) to 3 seeds; ``trials: 14`` keeps the race's
worst case, (4 + 1) x 2 seeds, from the budget, which leaves those 4 trials to search. Its first phase trains the
baseline's seeds 1 and 2; seed 2 sleeps in the first driver, which is killed once seed 1
finished, and ``--resume`` finishes the race.

Run under the shared Ray lock (``flock /tmp/share-search-ray.lock``).
"""

from __future__ import annotations

import json
import os
import signal
import sys
import uuid

import pandas as pd
import pytest

from share_search.cli import main
from share_search.spec.registry import SAMPLERS
from tests.runs import end_marked, ray_trial_folders, running_driver, small_spec, study_of, wait_for_a_finished_seed, write_spec

MARKER = "SHARE_SEARCH_TEST_MARKER"
SLOW = "SHARE_SEARCH_TEST_SLOW_RACE_SEED"
BASELINE, HARD, TWIN, USELESS = 0, 1, 2, 3


@pytest.fixture(scope="module")
def raced(tmp_path_factory, ray_session):
    tmp = tmp_path_factory.mktemp("race")
    spec = write_spec(tmp / "s.yaml", small_spec(
        name="race", plugins=["tests.engine.race_plugin"], families={"tree": {}},
        backbone={"name": "tests.engine.seed_backbones:by_seed",
                  "options": {"widths": [16], "barrier": str(tmp / "barrier"), "parties": 2, "from_seed": 1, "slow_seed": 2, "slow_env": SLOW}},
        train={"lr": [0.01, 0.000001], "epochs": 1},
        search={"sampler": "race_replay", "trials": 14, "concurrency": 3, "export_top": 1, "confirm": {"top": 4, "max_seeds": 3}},
    ))
    run_dir = tmp / "run"
    marker = uuid.uuid4().hex
    try:
        with running_driver(["run", str(spec), "--out", str(run_dir), "--quiet"], tmp / "driver.log", {MARKER: marker, SLOW: "1"}) as proc:
            wait_for_a_finished_seed(proc, run_dir / "study.db", min_repeat=1)
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait(timeout=300)
    finally:
        end_marked(f"{MARKER}={marker}")
    before = {t.number: t for t in study_of(run_dir, "race").get_trials()}
    try:
        assert main(["run", str(spec), "--out", str(run_dir), "--resume"]) == 0
        yield run_dir, tmp, before, {t.number: t for t in study_of(run_dir, "race").get_trials()}
    finally:  # the in-process resume imported the plugin: other tests list the registries
        SAMPLERS.unregister("race_replay")
        sys.modules.pop("tests.engine.race_plugin", None)


def _race_trials(trials):
    return [t for t in trials.values() if "race" in t.user_attrs]


def test_the_race_drops_the_clearly_worse_and_keeps_the_tied(raced, capsys):
    run_dir, _, _, trials = raced
    race = study_of(run_dir, "race").user_attrs["race"]
    assert race["finished"] and race["candidates"] == [BASELINE, HARD, TWIN, USELESS]
    assert str(USELESS) in race["dropped"] and race["dropped"][str(USELESS)]["p"] < 0.05
    assert HARD in race["survivors"] and TWIN in race["survivors"]  # tied by construction: never dropped
    board = pd.read_csv(run_dir / "leaderboard.csv").set_index("trial")
    assert int(board.loc[race["leader"], "rank"]) == 1  # the race's leader is ranked first and exported
    assert board.loc[HARD, "n_seeds"] == board.loc[TWIN, "n_seeds"] == 3
    assert board.loc[USELESS, "n_seeds"] == 1 + race["dropped"][str(USELESS)]["round"]  # dropped: no seed after its round
    metrics = json.loads((run_dir / "export" / "rank-1" / "metrics.json").read_text())
    assert metrics["trial"] == race["leader"] and "confirmation race finished" in metrics["race"]
    card = (run_dir / "export" / "rank-1" / "MODEL_CARD.md").read_text()
    runner_up = board[board["rank"] == 2].iloc[0]
    assert ("TIED" in card) == bool(runner_up["tied_with_best"]) and "confirmation race finished" in card
    # race trials are not leaderboard rows; the run summary states the race and its compute
    assert set(board.index) == {BASELINE, HARD, TWIN, USELESS}
    assert "race: confirmation race finished" in capsys.readouterr().out or (run_dir / "run.log").read_text().count("confirmation race finished")


def test_paired_delta_m_recomputed_by_hand_from_the_stored_seeds(raced):
    run_dir, _, _, trials = raced
    seeds = {n: {} for n in trials}
    for t in sorted(trials.values(), key=lambda t: t.number):  # each repeat once: a race trial holds copies of earlier seeds
        of = t.user_attrs["race"]["of"] if "race" in t.user_attrs else t.number
        for s in t.user_attrs.get("seeds") or [{"repeat": 0, "state": t.state.name, "val": t.user_attrs.get("val")}]:
            if s["state"] == "COMPLETE":
                seeds[of].setdefault(s["repeat"], s["val"])
    base = seeds[BASELINE]
    assert sorted(base) == [0, 1, 2]
    assert seeds[HARD] == seeds[TWIN]  # the same values and seeds: the same results, seed by seed
    board = pd.read_csv(run_dir / "leaderboard.csv").set_index("trial")
    for number in (HARD, TWIN, USELESS):
        per_seed = [100 / 2 * sum((v[t]["accuracy"] - base[r][t]["accuracy"]) / base[r][t]["accuracy"] for t in ("digit", "odd"))
                    for r, v in sorted(seeds[number].items())]
        mean = sum(per_seed) / len(per_seed)
        se = (sum((x - mean) ** 2 for x in per_seed) / (len(per_seed) - 1) / len(per_seed)) ** 0.5
        assert board.loc[number, "n_seeds"] == len(per_seed)
        assert board.loc[number, "delta_m"] == pytest.approx(mean, abs=1e-9)
        assert board.loc[number, "delta_m.se"] == pytest.approx(se, abs=1e-9)


def test_race_seeds_are_separate_ray_trials_trained_in_parallel(raced):
    run_dir, tmp, _, trials = raced
    # the baseline's seeds 1 and 2 each waited at a barrier until the other had started
    assert sorted(p.name for p in (tmp / "barrier").iterdir()) == ["1", "2"]
    folders = sorted(p.name for p in (run_dir / "ray").iterdir() if p.is_dir())
    rounds = [f for f in folders if f.startswith("race-round-1-")]
    assert len(rounds) == 1
    in_round = ray_trial_folders(run_dir / "ray" / rounds[0])
    assert len(in_round) == 3  # HARD, TWIN, USELESS: one Ray trial each (the baseline has its seed already)
    race = study_of(run_dir, "race").user_attrs["race"]
    told = [t for t in _race_trials(trials) if t.state.name == "COMPLETE"]
    assert race["seeds"] == len({(t.user_attrs["race"]["of"], s["repeat"]) for t in told for s in t.user_attrs["seeds"] if s["repeat"] >= 1})
    assert race["trial_epochs"] == race["seeds"] and race["seconds"] > 0  # one epoch per seed


def test_a_resumed_race_keeps_the_seeds_that_finished(raced):
    run_dir, _, before, trials = raced
    (stopped,) = [t for t in before.values() if "race" in t.user_attrs and t.state.name in ("RUNNING", "FAIL")]
    assert stopped.user_attrs["race"]["of"] == BASELINE and stopped.user_attrs["race"].get("pairing")
    kept = [s for s in stopped.user_attrs["seeds"] if s["repeat"] >= 1 and s["state"] == "COMPLETE"]
    assert [s["seed"] for s in kept] == [1]
    (retry,) = [t for t in _race_trials(trials) if t.user_attrs["race"].get("pairing") and t.state.name == "COMPLETE"]
    by_repeat = {s["repeat"]: s for s in retry.user_attrs["seeds"]}
    same = ("seed", "started_at", "ended_at", "checkpoint", "val", "time_s")
    assert {k: by_repeat[1][k] for k in same} == {k: kept[0][k] for k in same}  # the same seed's record: it did not train again
    assert by_repeat[2]["started_at"] > kept[0]["ended_at"]
    pairing = sorted(p for p in (run_dir / "ray").iterdir() if p.name.startswith("race-baseline-seeds-"))
    assert len(pairing) == 2
    assert len(ray_trial_folders(pairing[-1])) == 1  # seed 2's only


def test_the_report_draws_the_race(raced):
    from share_search.runs.report import race_figure, render_html, report_data

    run_dir, _, _, _ = raced
    data = report_data(study_of(run_dir, "race"))
    fig = race_figure(data)
    standing = data.board.attrs["race"]
    by_name = {trace.name: trace for trace in fig.data}
    assert {f"trial {c}" for c in standing.candidates if c != standing.leader} <= set(by_name)
    last = standing.rounds[-1]
    hard = by_name[f"trial {HARD}" + (" (leader)" if HARD == standing.leader else "")]
    assert list(hard.x) == [r.number for r in standing.rounds]
    assert hard.y[-1] == pytest.approx(last.spreads[HARD].mean) and hard.error_y.array[-1] == pytest.approx(last.spreads[HARD].se)
    dropped = by_name["dropped"]
    assert any("trial 3 dropped" in text for text in dropped.hovertext)
    page = render_html(data)
    assert 'id="fig-race"' in page and "Confirmation race" in page and "Confirmation race finished" in page
