"""Architecture drawings: the layout data (no plotly), then its plotly figure and SVG text."""

import xml.etree.ElementTree as ET

import pytest

from share_search.arch import get_family
from share_search.spec.registry import get_family_space
from share_search.arch.cross_stitch import CrossStitchConfig
from share_search.arch.progressive import ProgressiveConfig
from share_search.arch.tree import TreeConfig
from share_search.arch.layout import Box, layout
from share_search.runs.drawing import HALF_WIDTH, to_figure, to_svg
from share_search.runs.record import Plan, TrialRecord, stage_count

TASKS = ["digit", "odd", "loop"]
SVG = "{http://www.w3.org/2000/svg}"


def box_at(drawing, row, x):
    """The box on ``row`` whose span holds column position ``x`` (None if there is none)."""
    found = [b for b in drawing.boxes if b.row == row and b.x0 - 1e-9 <= x <= b.x1 + 1e-9]
    assert len(found) <= 1, f"boxes overlap on row {row} at x={x}: {found}"
    return found[0] if found else None


def every_architecture(n_stages=3):
    for name in ("tree", "cross_stitch", "progressive"):
        yield from get_family_space(name).enumerate(TASKS, n_stages, get_family(name).Options())


@pytest.mark.parametrize("arch", list(every_architecture()), ids=lambda a: a.summary())
def test_every_link_joins_two_boxes_and_every_task_has_one_head(arch):
    d = layout(arch, n_stages=3, tasks=TASKS)
    assert d.row_labels == ("input", "stage 0", "stage 1", "stage 2", "heads")
    for link in d.links:
        assert box_at(d, link.row0, link.x0) is not None, link
        assert box_at(d, link.row1, link.x1) is not None, link
        assert link.row1 > link.row0
    heads = sorted(b.label for b in d.boxes if b.kind == "head")
    assert heads == sorted(TASKS)
    # every box below the input is fed by at least one link
    for b in d.boxes:
        if b.kind != "input":
            assert any(k.row1 == b.row and b.x0 - 1e-9 <= k.x1 <= b.x1 + 1e-9 for k in d.links), b


def test_tree_boxes_span_the_columns_of_the_tasks_that_share_them():
    arch = TreeConfig(stages=((("digit", "loop", "odd"),), (("digit", "loop"), ("odd",)), (("digit",), ("loop",), ("odd",))))
    d = layout(arch)
    assert d.family == "tree"
    stage = {b.row: [] for b in d.boxes}
    for b in d.boxes:
        stage[b.row].append(b)
    assert [len(stage[r]) for r in range(5)] == [1, 1, 2, 3, 3]
    (trunk,) = stage[1]
    assert (trunk.x0, trunk.x1) == (0, 2) and set(trunk.tasks) == set(TASKS)
    pair = next(b for b in stage[2] if len(b.tasks) == 2)
    assert set(pair.tasks) == {"digit", "loop"} and pair.x1 - pair.x0 == 1  # adjacent columns
    # the branch's children hang below it: links from the pair's centre to digit and loop
    children = {box_at(d, k.row1, k.x1).label for k in d.links if k.row0 == 2 and k.x0 == pair.centre}
    assert children == {"digit", "loop"}
    assert d.notes == ("stage 0 shared by all tasks",)


def test_hard_sharing_and_independent_trees():
    shared = layout(TreeConfig.hard_sharing(TASKS, 3))
    assert [len([b for b in shared.boxes if b.row == r]) for r in range(1, 4)] == [1, 1, 1]
    assert "stages 0-2 shared by all tasks" in shared.notes
    alone = layout(TreeConfig.independent(TASKS, 3))
    assert [len([b for b in alone.boxes if b.row == r]) for r in range(1, 4)] == [3, 3, 3]
    assert alone.notes == ("no stage shared by all tasks",)


def test_cross_stitch_links_carry_the_learned_alpha_averaged_over_channels():
    arch = CrossStitchConfig(stages=(1,), alpha_self=0.9)
    alpha = [[[0.8, 0.6], [0.1, 0.3], [0.0, 0.2]], [[0.2, 0.2], [0.7, 0.7], [0.1, 0.1]], [[0.0, 0.0], [0.5, 0.5], [0.5, 0.5]]]
    d = layout(arch, {"tasks": ["digit", "odd", "loop"], "alpha": {"after_stage1": alpha}}, n_stages=3)
    assert d.columns == ("digit", "odd", "loop")
    units = [k for k in d.links if k.kind == "cross_stitch"]
    assert len(units) == 9 and {(k.row0, k.row1) for k in units} == {(2, 3)}
    weight = {(int(k.x1), int(k.x0)): k.weight for k in units}  # (to, from)
    assert weight[(0, 0)] == pytest.approx(0.7) and weight[(0, 1)] == pytest.approx(0.2) and weight[(2, 1)] == pytest.approx(0.5)
    assert {k.label for k in units if k.x0 == k.x1} == {"0.70", "0.50"}  # self α labelled on the column
    # no plain flow left where the unit mixes the columns
    assert not [k for k in d.links if k.kind == "flow" and k.row0 == 2]
    assert any("learned α into digit: digit 0.70, odd 0.20, loop 0.10" in n for n in d.notes)


def test_cross_stitch_without_details_draws_the_initial_alpha():
    d = layout(CrossStitchConfig(stages=(0, 2), alpha_self=0.8), n_stages=3, tasks=["a", "b"])
    units = [k for k in d.links if k.kind == "cross_stitch"]
    assert len(units) == 8
    assert sorted({round(k.weight, 6) for k in units}) == [0.2, 0.8]
    assert all("initial α" in n for n in d.notes) and len(d.notes) == 4
    with pytest.raises(ValueError, match="task names"):
        layout(CrossStitchConfig(stages=(0,)))


def test_progressive_columns_follow_the_training_order_with_laterals_from_earlier_columns():
    arch = ProgressiveConfig(order=("loop", "digit", "odd"), lateral_stages=(1, 2), lateral="adapter")
    d = layout(arch, {"order": ["loop", "digit", "odd"], "scale": {"column1.stage1": 0.05, "column2.stage2": 0.5}}, n_stages=4)
    assert d.columns == ("1. loop", "2. digit", "3. odd")
    laterals = [k for k in d.links if k.kind == "lateral"]
    assert len(laterals) == 2 * (1 + 2)  # per lateral stage: column k gets one from each earlier column
    assert all(k.x0 < k.x1 and k.row1 == k.row0 + 1 for k in laterals)
    assert {(k.x1, k.row1, k.label) for k in laterals if k.label} == {(1, 2, "a=0.05"), (2, 3, "a=0.50")}
    assert "loop → digit → odd" in d.notes[0] and "adapter laterals into stages 1, 2" == d.notes[1]


def test_stage_count():
    trees = [None, {"family": "cross_stitch", "stages": [0]}, {"family": "tree", "stages": [[["a", "b"]], [["a"], ["b"]]]}]
    records = [TrialRecord(number=n, state="COMPLETE", plan=Plan(arch=arch)) for n, arch in enumerate(trees)]
    assert stage_count({}, records) == 2
    assert stage_count({"n_stages": 3}, records) == 3  # the study's own attribute comes first
    assert stage_count({}, [TrialRecord(number=0, state="COMPLETE", plan=Plan(arch={"family": "progressive"}))]) is None
    assert len(layout(ProgressiveConfig(order=("a", "b"), lateral_stages=(2,))).row_labels) == 3 + 2  # as deep as it uses
    with pytest.raises(ValueError, match="uses 3 stages, but n_stages is 2"):
        layout(ProgressiveConfig(order=("a", "b"), lateral_stages=(2,)), n_stages=2)
    with pytest.raises(ValueError, match="uses 3 stages"):
        layout(TreeConfig.hard_sharing(["a"], 3), n_stages=2)


@pytest.mark.parametrize("arch", [
    TreeConfig(stages=((("a", "b", "c"),), (("a", "b"), ("c",)))),
    CrossStitchConfig(stages=(0, 1)),
    ProgressiveConfig(order=("c", "a", "b"), lateral_stages=(1,)),
], ids=lambda a: a.family)
def test_svg_is_well_formed_with_one_rect_per_box_and_task_labels(arch):
    d = layout(arch, n_stages=2, tasks=["a", "b", "c"])
    svg = to_svg(d, title="rank <1> & \"best\"")
    root = ET.fromstring(svg)  # raises on malformed XML (e.g. an unescaped '<' or '&')
    assert root.tag == f"{SVG}svg" and float(root.get("width")) > 0
    rects = root.findall(f"{SVG}rect")
    assert len(rects) == 1 + len(d.boxes)  # the white background, then the boxes
    assert len(root.findall(f"{SVG}line")) == len(d.links)
    texts = "".join(t.text or "" for t in root.iter(f"{SVG}text"))
    assert 'rank <1> & "best"' in texts
    for name in ("a", "b", "c"):
        assert name in {t.text for t in root.iter(f"{SVG}text")}


def test_plotly_figure_draws_each_box_and_link():
    d = layout(CrossStitchConfig(stages=(1,)), n_stages=3, tasks=["a", "b"])
    fig = to_figure(d)
    kinds = [s.type for s in fig.layout.shapes]
    assert kinds.count("rect") == len(d.boxes) and kinds.count("line") == len(d.links)
    labels = [t for t in fig.data if t.mode == "text"]
    assert set(labels[0].text) >= {"input", "a", "b"}
    assert list(fig.layout.yaxis.ticktext) == list(d.row_labels)
    assert fig.layout.title.text == d.title


def test_long_labels_are_cut_to_their_box():
    d = layout(TreeConfig.independent(["a_very_long_task_name_indeed", "b"], 1))
    box = next(b for b in d.boxes if b.kind == "stage" and b.tasks == ("a_very_long_task_name_indeed",))
    assert isinstance(box, Box) and box.x1 - box.x0 + 2 * HALF_WIDTH < 1
    text = to_figure(d).data[0].text
    assert any(t.endswith("…") for t in text)


def test_a_tree_must_match_the_given_depth():
    with pytest.raises(ValueError, match="uses 1 stages, but n_stages is 2"):
        layout({"family": "tree", "stages": [[["a"]]]}, n_stages=2)
