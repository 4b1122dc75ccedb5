"""The dense demo's report in a real headless Chromium: the top architectures' prediction
pictures are embedded, decode as images, show something, and leave the page offline and
free of JavaScript errors. Uses ``dense_run`` (conftest.py), which runs Ray: run it under
the shared lock.
"""

from __future__ import annotations

import base64

import pytest

from .test_browser import browser, is_blank, opened_report  # noqa: F401  (browser: the module's headless Chromium fixture)

TASKS = ("segmentation", "depth", "edges")


@pytest.fixture(scope="module")
def dense_tab(browser, dense_run, tmp_path_factory):
    yield from opened_report(browser, dense_run.run_dir, tmp_path_factory.mktemp("dense_report"))


def test_the_top_architectures_prediction_pictures_render(dense_tab):
    figures = dense_tab.evaluate(
        "Array.from(document.querySelectorAll('.predictions')).map(function (div) {"
        " return [div.id, Array.from(div.querySelectorAll('figure.prediction')).map(function (f) {"
        "  var img = f.querySelector('img');"
        "  return [f.dataset.task, img.complete, img.naturalWidth, img.naturalHeight, img.width, img.src.slice(0, 22)]; })]; })"
    )
    assert [f[0] for f in figures] == ["predictions-rank-1", "predictions-rank-2", "predictions-rank-3"]
    for _, pictures in figures:
        assert [p[0] for p in pictures] == list(TASKS)
        for task, complete, width, height, shown_width, src in pictures:
            assert complete and width > 3 * 36 and height > 3 * 36, (task, width, height)  # decoded: a broken image is 0x0
            assert shown_width == 2 * width  # small pictures are shown at twice their size
            assert src == "data:image/png;base64,"
    caption = dense_tab.evaluate("document.querySelector('#predictions-rank-1 figure[data-task=segmentation] figcaption').textContent")
    assert "background" in caption and "one colour per class" in caption  # the classes' swatches
    assert dense_tab.evaluate("document.querySelectorAll('#predictions-rank-1 .swatch').length") == 11
    load = dense_tab.load()  # and the page stays offline, without errors
    assert load.errors == [] and {u for u in load.requests if not u.startswith("data:")} == {dense_tab.url}


def test_the_pictures_are_not_blank_on_screen(dense_tab):
    dense_tab.evaluate("document.getElementById('predictions-rank-1').scrollIntoView()")
    assert not is_blank(dense_tab.screenshot())


def test_each_embedded_picture_is_the_trials_artifact(dense_tab, dense_run):
    """What the page shows is the PNG the trial stored, byte for byte."""
    import optuna

    from share_search.runs.artifacts import trial_pictures
    from share_search.runs.dashboard import artifact_dir

    study = optuna.load_study(study_name="dense", storage=f"sqlite:///{dense_run.run_dir / 'study.db'}")
    best = int(dense_run.board.sort_values("rank").iloc[0]["trial"])
    stored = trial_pictures(study.trials[best], artifact_dir(dense_run.run_dir))
    shown = dense_tab.evaluate(
        "Array.from(document.querySelectorAll('#predictions-rank-1 img')).map(function (i) { return i.src.split(',')[1]; })"
    )
    assert [base64.b64decode(s) for s in shown] == [stored[t] for t in TASKS]
