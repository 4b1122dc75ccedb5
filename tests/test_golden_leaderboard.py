"""The leaderboard of a fixed spec, value for value, against one recorded before the package
was restructured (issue 17): moving code must not change what a search finds.

With the random sampler and no scheduler, a spec and seed give the same leaderboard on the
CPU at any concurrency (README, "Interrupt and resume"), so the recorded values are exact
up to floating-point noise. A change that is meant to alter results (a new epoch-selection
rule, say) re-records the file on purpose, and its commit says why:

    SHARE_SEARCH_RECORD_GOLDEN=1 python -m pytest -q tests/test_golden_leaderboard.py
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

import pandas as pd
import pytest

from share_search.cli import main
from tests.runs import small_spec, write_spec

GOLDEN = Path(__file__).parent / "golden" / "leaderboard_random.json"
COLUMNS = ["trial", "state", "role", "family", "arch", "params", "macs", "best_epoch", "val.digit", "val.odd", "delta_m", "rank"]
SPEC = small_spec(
    name="golden",
    seed=7,
    backbone={"name": "mlp", "options": {"widths": [16, 16]}},
    families={"tree": {}, "cross_stitch": {}, "progressive": {}},
    train={"epochs": 2},
    search={"sampler": "random", "trials": 7, "concurrency": 2, "export_top": 1},
)


def _board(tmp_path: Path) -> list[dict]:
    path = write_spec(tmp_path / "golden.yaml", SPEC)
    assert main(["run", str(path), "--out", str(tmp_path / "run"), "--quiet"]) == 0
    board = pd.read_csv(tmp_path / "run" / "leaderboard.csv", keep_default_na=False, na_values=[""])
    rows = board[COLUMNS].sort_values("trial").to_dict(orient="records")
    return [{k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in row.items()} for row in rows]


def test_the_leaderboard_of_a_fixed_spec_is_unchanged(tmp_path, ray_session):
    rows = _board(tmp_path)
    if os.environ.get("SHARE_SEARCH_RECORD_GOLDEN"):
        GOLDEN.parent.mkdir(exist_ok=True)
        GOLDEN.write_text(json.dumps({"spec": SPEC, "rows": rows}, indent=1) + "\n")
    golden = json.loads(GOLDEN.read_text())
    assert golden["spec"] == SPEC, "the spec changed: re-record the golden leaderboard on purpose"
    assert len(rows) == len(golden["rows"])
    for got, want in zip(rows, golden["rows"]):
        for key in COLUMNS:
            if isinstance(want[key], float):
                assert got[key] == pytest.approx(want[key], rel=1e-6, abs=1e-9), (want["trial"], key)
            else:
                assert got[key] == want[key], (want["trial"], key)
