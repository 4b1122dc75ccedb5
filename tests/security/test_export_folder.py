"""``export`` writes only into rank folders it wrote (issue 16, items 7 and 19).

It deleted a user's file in ``export/rank-1/`` and left ``rank-k`` folders of an earlier
ranking beside the new ones (two folders for one trial); ``weights.safetensors`` came out
0600 while every other file followed the umask.
"""

import json
import os
import shutil
import stat
from pathlib import Path

import pytest
import torch

from share_search.arch import build_model
from share_search.arch.tree import TreeConfig
from share_search.arch.backbones import make_backbone
from share_search.cli import main
from share_search.errors import CheckpointError
from share_search.runs.export import write_export
from share_search.train.tasks import Task

TASK = (Task(name="y", label="y", type="binary", n_outputs=1, metric="accuracy"),)


def export_to(folder: Path) -> Path:
    backbone = make_backbone("mlp", (4,), {"widths": [3]})
    arch = TreeConfig.hard_sharing(["y"], backbone.n_stages)
    return write_export(
        folder, model=build_model(arch, backbone, TASK), plan_dict={"arch": arch.to_dict(), "train": {}}, tasks=TASK,
        backbone=backbone, spec_dict={"name": "t"}, metrics={"rank": 1, "trial": 0, "val": {}, "test": {}}, example_x=torch.randn(2, 4),
    )


def snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.mark.parametrize("umask", [0o022, 0o027])
def test_every_exported_file_follows_the_umask(tmp_path, umask):
    earlier = os.umask(umask)
    try:
        folder = export_to(tmp_path / "export" / "rank-1")
    finally:
        os.umask(earlier)
    modes = {p.name: oct(stat.S_IMODE(p.stat().st_mode)) for p in folder.iterdir()}
    assert modes == dict.fromkeys(modes, oct(0o666 & ~umask)), modes
    assert oct(stat.S_IMODE(folder.stat().st_mode)) == oct(0o777 & ~umask)


def test_a_folder_share_search_did_not_write_is_never_replaced(tmp_path):
    mine = tmp_path / "export" / "rank-1"
    mine.mkdir(parents=True)
    (mine / "notes.txt").write_text("my notes")
    (tmp_path / "export" / "rank-1.tmp").mkdir()  # the old writer's scratch name, emptied without asking
    (tmp_path / "export" / "rank-1.tmp" / "draft.txt").write_text("my draft")
    before = snapshot(tmp_path)
    with pytest.raises(CheckpointError, match=r"export replaces only the rank folders it wrote, unchanged since, and .*rank-1 is not one \(.*rank-1: not an exported model"):
        export_to(mine)
    assert snapshot(tmp_path) == before
    assert sorted(p.name for p in (tmp_path / "export").iterdir()) == ["rank-1", "rank-1.tmp"]  # no scratch folder left


def test_an_export_replaces_its_own_folder_whole(tmp_path):
    folder = export_to(tmp_path / "export" / "rank-1")
    export_to(folder)  # its own, unchanged: replaced
    assert sorted(p.name for p in (tmp_path / "export").iterdir()) == ["rank-1"]
    (folder / "notes.txt").write_text("added by the user")
    with pytest.raises(CheckpointError, match=r"rank-1/notes\.txt: not listed in manifest\.json"):
        export_to(folder)
    assert (folder / "notes.txt").read_text() == "added by the user"


def _metrics(run: Path) -> dict[str, dict]:
    return {p.name: json.loads((p / "metrics.json").read_text()) for p in sorted((run / "export").iterdir())}


def test_reexport_replaces_the_earlier_ranking_and_refuses_a_users_file(small_run, tmp_path, capsys):
    """A real run (export_top 2) exported again by one task, top 1: no folder of the earlier
    ranking is left, and a user's file in a rank folder stops the export with exit 2."""
    run = tmp_path / "small"
    shutil.copytree(small_run.run_dir, run)
    assert sorted(_metrics(run)) == ["rank-1", "rank-2"]

    assert main(["export", str(run), "--rank-by", "odd", "--top", "1", "--budget", "params<=1000000"]) == 0
    metrics = _metrics(run)
    assert sorted(metrics) == ["rank-1"], "a rank folder of the earlier ranking was left"
    assert metrics["rank-1"]["rank_by"] == "odd" and metrics["rank-1"]["budget"] == "params<=1000000"
    ranked = small_run.board[small_run.board["rank"].notna()]
    assert metrics["rank-1"]["trial"] == ranked.sort_values(["val.odd", "trial"], ascending=[False, True]).iloc[0]["trial"]

    assert main(["export", str(run), "--top", "2"]) == 0
    assert [m["rank_by"] for m in _metrics(run).values()] == ["delta_m", "delta_m"]

    (run / "export" / "rank-2" / "notes.txt").write_text("my notes")
    before = snapshot(run / "export")
    capsys.readouterr()
    assert main(["export", str(run), "--top", "1"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "rank-2/notes.txt: not listed in manifest.json" in err[0] and "move it elsewhere" in err[0], err
    assert snapshot(run / "export") == before, "a refused export changed the export folder"
