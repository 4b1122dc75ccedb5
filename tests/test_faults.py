"""Faults inside trials: an exception, NaN losses, out of memory, a worker that dies.

Each is planted by a user backbone (``tests.fault_backbones``) keyed on the searched batch
size; a grid search gives each batch size exactly one trial. The failed trials are
recorded as FAIL with their reason, the others finish, and the run exits 0 with a summary.
"""

import pandas as pd
from optuna.trial import TrialState

from share_search.cli import main
from tests.runs import small_spec, study_of, write_spec

BACKBONE = "tests.fault_backbones:faulty"
EXPECTED = {  # batch size -> (fault, words in the recorded reason)
    24: ("raise", "RuntimeError: planted fault for batch size 24"),
    40: ("nan", "TrainingDiverged: training diverged in epoch 1"),
    56: ("oom", "OutOfMemoryError: planted: CUDA out of memory for batch size 56"),
    72: ("die", "died"),
}


def test_failing_trials_are_recorded_and_the_search_goes_on(tmp_path, ray_session, capsys):
    faults = {bs: fault for bs, (fault, _) in EXPECTED.items()}
    spec = small_spec(
        backbone={"name": BACKBONE, "options": {"widths": [16], "faults": faults}},
        families={"tree": {}},  # one stage, first stage shared: hard sharing is the only tree
        train={"batch_size": [32, *EXPECTED]},
        # no reference trials: one Tuner phase keeps the test short
        search={"sampler": "grid", "export_top": 1, "objective": "per_task", "baselines": False},
    )
    path = write_spec(tmp_path / "faults.yaml", spec)
    out = tmp_path / "run"
    code = main(["run", str(path), "--out", str(out), "--quiet"])
    printed = capsys.readouterr().out
    assert code == 0, printed

    study = study_of(out)
    trials = study.get_trials()
    # one grid trial per batch size: 32 trains normally, every other one plants its fault
    by_batch = {t.params["train.batch_size"]: t for t in trials}
    assert len(trials) == len(by_batch) == 1 + len(EXPECTED)
    assert by_batch[32].state == TrialState.COMPLETE
    for bs, (fault, words) in EXPECTED.items():
        t = by_batch[bs]
        assert t.state == TrialState.FAIL, (fault, t.state)
        assert words in t.user_attrs["fail_reason"], (fault, t.user_attrs["fail_reason"])

    board = pd.read_csv(out / "leaderboard.csv")
    failed = board[board["state"] == "FAIL"].set_index("trial")
    assert len(failed) == len(EXPECTED)
    for bs, (_, words) in EXPECTED.items():
        assert words in failed.loc[by_batch[bs].number, "fail_reason"]
        assert f"trial {by_batch[bs].number} failed: " in printed  # the closing summary names each one
    assert "1 complete, 0 pruned, 4 failed" in printed
    assert (out / "export" / "rank-1" / "weights.safetensors").is_file()


def test_a_run_where_every_trial_fails_exits_non_zero(tmp_path, ray_session, capsys):
    spec = small_spec(
        backbone={"name": BACKBONE, "options": {"widths": [16], "faults": {32: "raise", 24: "nan"}}},
        families={"tree": {}},
        train={"batch_size": [32, 24]},
        search={"sampler": "grid", "objective": "per_task", "baselines": False},
    )
    path = write_spec(tmp_path / "all-fail.yaml", spec)
    code = main(["run", str(path), "--out", str(tmp_path / "run"), "--quiet"])
    printed = capsys.readouterr().out
    assert code == 1, printed
    states = [t.state for t in study_of(tmp_path / "run").get_trials()]
    assert states == [TrialState.FAIL, TrialState.FAIL]
    assert "0 complete, 0 pruned, 2 failed" in printed
    assert "planted fault for batch size 32" in printed and "training diverged" in printed

