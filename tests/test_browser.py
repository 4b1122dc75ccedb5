"""The report and the dashboard in a real headless Chromium: no JavaScript error, no request
leaving the machine, figures drawn, a screenshot that is not blank.

Without Chromium the tests skip locally but fail under CI (``CI`` set), where `.ci/run`
installs Debian's chromium.
"""

import io
import threading

import numpy as np
import pytest
from PIL import Image

from share_search.runs.dashboard import make_server, url_of
from share_search.runs.report import write_report

from ._chromium import Chromium, require_chromium


@pytest.fixture(scope="module")
def browser():
    binary = require_chromium()
    b = Chromium(binary, width=1400, height=1000)
    yield b
    b.close()


def pixels(png: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(png)).convert("RGB"), dtype=float)


def is_blank(png: bytes) -> bool:
    """One flat colour (or nearly): nothing was drawn."""
    image = pixels(png)
    return image.std() < 8 or len(np.unique(image.reshape(-1, 3), axis=0)) < 16


def page(tmp_path, name: str, body: str) -> str:
    path = tmp_path / name
    path.write_text(f"<!DOCTYPE html><html><head><meta charset='utf-8'></head><body>{body}</body></html>")
    return path.as_uri()


# --------------------------------------------------------------------------- the harness can fail
def test_the_harness_sees_errors_and_blank_pages(browser, tmp_path):
    tab = browser.open(page(tmp_path, "bad.html", "<h1>hi</h1><script>null.f();</script>"))
    errors = tab.load().errors
    assert len(errors) == 1 and "uncaught exception" in errors[0] and "TypeError" in errors[0]
    tab.close()
    tab = browser.open(page(tmp_path, "late.html", "<script>setTimeout(function () { throw new Error('later') }, 50)</script>"))
    assert any("later" in e for e in tab.load().errors)
    tab.close()
    tab = browser.open(page(tmp_path, "console.html", "<script>console.error('broken figure')</script>"))
    assert tab.load().errors == ["console.error: broken figure"]
    tab.close()
    tab = browser.open(page(tmp_path, "blank.html", ""))
    load = tab.load()
    assert load.errors == [] and load.requests == [tab.url]
    assert is_blank(tab.screenshot())
    tab.close()
    tab = browser.open(page(tmp_path, "remote.html", "<img src='http://192.0.2.1/x.png'>"))
    assert "http://192.0.2.1/x.png" in tab.load().requests
    tab.close()


# --------------------------------------------------------------------------- the report
def opened_report(browser, run_dir, folder):
    """A run's report (top 3) written to ``folder``, open in a tab of ``browser`` until the
    fixture that ``yield from``s this ends."""
    tab = browser.open(write_report(run_dir, folder / "report.html", top=3).as_uri(), settle_s=1.0)
    yield tab
    tab.close()


@pytest.fixture(scope="module")
def report_tab(browser, small_run, tmp_path_factory):
    yield from opened_report(browser, small_run.run_dir, tmp_path_factory.mktemp("report"))


def test_report_opens_offline_without_javascript_errors(report_tab):
    load = report_tab.load()
    assert load.errors == []
    assert set(load.requests) == {report_tab.url}  # nothing fetched: plotly.js is inlined


def test_report_draws_every_figure(report_tab):
    plots = report_tab.evaluate(
        "Array.from(document.querySelectorAll('.js-plotly-plot')).map(function (d) {"
        " return [d.id, d.querySelectorAll('.main-svg').length, d.getBoundingClientRect().width]; })"
    )
    assert [p[0] for p in plots] == ["fig-pareto", "fig-delta-m-by-family", "fig-cost", "fig-curves", "fig-arch-rank-1", "fig-arch-rank-2", "fig-arch-rank-3"]
    assert all(n >= 1 and width > 300 for _, n, width in plots), plots
    # the architecture drawings have their boxes (shapes) and labels
    shapes = report_tab.evaluate("document.getElementById('fig-arch-rank-1').querySelectorAll('.shapelayer path').length")
    assert shapes >= 5
    assert "Δm = 100/T" in report_tab.evaluate("document.getElementById('delta-m-convention').textContent")


def test_report_screenshot_is_not_blank(report_tab):
    png = report_tab.screenshot()
    assert not is_blank(png)
    report_tab.evaluate("document.getElementById('fig-pareto').scrollIntoView()")
    assert not is_blank(report_tab.screenshot())


def test_leaderboard_sorts_on_click(report_tab, small_run):
    column = report_tab.evaluate(
        "(function () { var ths = Array.from(document.querySelectorAll('#leaderboard th'));"
        " return ths.findIndex(function (th) { return th.textContent.indexOf('params') === 0; }); })()"
    )
    assert column > 0
    read = (
        f"Array.from(document.querySelectorAll('#leaderboard tbody tr')).map(function (r) {{ return r.cells[{column}].dataset.value; }})"
    )
    report_tab.evaluate(f"document.querySelectorAll('#leaderboard th')[{column}].click()")
    up = [float(v) for v in report_tab.evaluate(read) if v != ""]
    assert up == sorted(up) and len(up) == small_run.board["params"].notna().sum()
    report_tab.evaluate(f"document.querySelectorAll('#leaderboard th')[{column}].click()")
    down = [float(v) for v in report_tab.evaluate(read) if v != ""]
    assert down == sorted(up, reverse=True)
    assert report_tab.load().errors == []


# --------------------------------------------------------------------------- the dashboard
@pytest.fixture(scope="module")
def dashboard_url(small_run):
    server = make_server(small_run.run_dir, port=0)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield url_of(server)
    server.shutdown()
    server.server_close()


def test_dashboard_shows_the_trials_with_their_drawings(browser, dashboard_url):
    tab = browser.open(dashboard_url + "studies/1/trials", settle_s=3.0)
    try:
        load = tab.load()
        assert load.errors == []
        assert all(u.startswith(dashboard_url.split("/dashboard/")[0]) or u.startswith("data:") for u in load.requests), load.requests
        # the selected trial's architecture drawing is shown as an image that decoded
        images = tab.evaluate(
            "Array.from(document.images).filter(function (i) { return i.src.indexOf('/artifacts/') >= 0; })"
            ".map(function (i) { return [i.complete, i.naturalWidth]; })"
        )
        assert images and all(done and width > 100 for done, width in images), images
        assert "Trial 0" in tab.evaluate("document.body.innerText")
        assert not is_blank(tab.screenshot())
    finally:
        tab.close()
