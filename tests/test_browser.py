"""The report in a real browser, headless Chromium: .venv/bin/python -m pytest -q tests/test_browser.py

Opens a generated report.html from disk, as a reader would (no server), and checks the explorer: no console
errors, points drawn, changing the y metric and a filter changes what is drawn; the first screen holds the answer
and the main plot, and the page never scrolls sideways. Screenshots land in the test's temporary folder.
Skipped, with the reason, where Chromium, chromedriver or selenium is missing (`make chromium` installs the
browser on Debian/Ubuntu; selenium comes with the dev extra). Uses the system Chromium: nothing is downloaded.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from test_report import (
    synthetic,  # the same synthetic sweep as the report tests: 2 models × 2 tasks × 5 methods
)

try:
    from selenium import webdriver
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select
except ImportError:  # what pytest.importorskip does, kept up here so that the imports stay at the top
    pytest.skip("selenium is not installed: pip install -e '.[dev]'", allow_module_level=True)

CHROMIUM = next((p for p in map(shutil.which, ("chromium", "chromium-browser", "google-chrome")) if p), None)
DRIVER = shutil.which("chromedriver")
# Flags that work in containers and CI: no sandbox (root), no GPU, nothing fetched from the network.
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--disable-dev-shm-usage", "--window-size=1400,900", "--hide-scrollbars"]

pytestmark = [
    pytest.mark.skipif(CHROMIUM is None, reason="no Chromium on PATH: `make chromium` (Debian/Ubuntu) installs it"),
    pytest.mark.skipif(DRIVER is None, reason="no chromedriver on PATH: `make chromium` installs chromium-driver"),
]


@pytest.fixture(scope="module")
def report_html(tmp_path_factory) -> Path:
    """A report of the synthetic sweep with only the main plot drawn: the plots are not what this test looks at,
    and drawing them all is most of a report's build time."""
    from bench.report import plots
    from bench.report.build import build_report

    sweep = tmp_path_factory.mktemp("results") / "synthetic"
    sweep.mkdir()
    synthetic().to_csv(sweep / "trials.csv", index=False)
    every, dpi = plots.PLOTS, plots.style.DPI
    plots.PLOTS = {"quality vs peak memory": every["quality vs peak memory"]}  # the first screen's plot
    plots.style.DPI = 50
    try:
        return build_report(sweep, tmp_path_factory.mktemp("reports") / "synthetic")
    finally:
        plots.PLOTS, plots.style.DPI = every, dpi


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    options = Options()
    options.binary_location = CHROMIUM
    for flag in FLAGS + [f"--user-data-dir={tmp_path_factory.mktemp('chromium-profile')}"]:
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(options=options, service=Service(DRIVER))
    driver.set_page_load_timeout(30)
    yield driver
    driver.quit()


def open_report(driver, path: Path) -> int | None:
    """Load the page (get returns once it has loaded, its inline scripts run); the explorer's point count, or None
    when it never drew."""
    driver.get(path.as_uri())
    count = driver.execute_script("var p = document.getElementById('explorer-plot');"
                                  "return p && p.getAttribute('data-points');")
    return None if count is None else int(count)


def errors(driver) -> list[str]:
    return [entry["message"] for entry in driver.get_log("browser") if entry["level"] == "SEVERE"]


def drawn(driver) -> tuple:
    """What the explorer shows: the plotted coordinates, the marker count in the SVG, and the y axis title."""
    return driver.execute_script(
        "var p = document.getElementById('explorer-plot');"
        "return [JSON.stringify(p.data.map(function (t) { return [t.name, t.x, t.y]; })),"
        "        p.querySelectorAll('.scatterlayer .point').length,"
        "        (p.querySelector('.ytitle') || {}).textContent];")


def test_explorer_draws_and_reacts_to_axes_and_filters(report_html, browser, tmp_path):
    text = report_html.read_text()
    assert "<script src=" not in text  # everything inlined: works offline, opened from disk
    points = open_report(browser, report_html)
    assert points, "the explorer drew nothing: its JavaScript is missing or threw"
    assert not errors(browser)
    coordinates, markers, y_title = drawn(browser)
    assert markers >= points > 0 and y_title.startswith("quality")

    layout = browser.execute_script(
        "return [document.querySelector('.cards').getBoundingClientRect().top,"
        "        document.querySelector('.main-plot img').getBoundingClientRect().top,"
        "        document.documentElement.scrollWidth, window.innerWidth];")
    assert layout[0] < 900 and layout[1] < 900, "the answer and the main plot must be on the first screen"
    assert layout[2] <= layout[3], "the page scrolls sideways"
    browser.save_screenshot(str(tmp_path / "first_screen.png"))

    Select(browser.find_element(By.ID, "explorer-y")).select_by_value("train_tokens_per_s")
    after_y = drawn(browser)
    assert after_y[0] != coordinates and after_y[2].startswith("throughput")

    browser.find_element(By.CSS_SELECTOR, "input[data-filter='family'][value='full']").click()
    after_filter = drawn(browser)
    assert after_filter[0] != after_y[0] and after_filter[1] < after_y[1]
    assert int(browser.find_element(By.ID, "explorer-plot").get_attribute("data-points")) < points
    assert not errors(browser)
    browser.execute_script("document.getElementById('explore').scrollIntoView()")
    browser.save_screenshot(str(tmp_path / "explorer.png"))
    assert (tmp_path / "explorer.png").stat().st_size > 10_000


def test_a_broken_explorer_is_caught(report_html, browser, tmp_path):
    """The checks above must fail when the explorer's code throws: a copy whose app script throws at once."""
    broken = tmp_path / "report.html"
    text = report_html.read_text()
    start = text.index("var D = JSON.parse(")
    broken.write_text(text[:start] + "throw new Error('explorer broken on purpose');" + text[start:])
    assert open_report(browser, broken) is None
    assert any("explorer broken on purpose" in message for message in errors(browser))


def test_tables_sort_by_a_header_click(report_html, browser):
    open_report(browser, report_html)
    column = browser.execute_script(
        "var found = null, index = -1;"
        "document.querySelectorAll('table.sortable').forEach(function (table) {"
        "  var headers = Array.prototype.map.call(table.tHead.rows[0].cells, function (c) { return c.textContent; });"
        "  if (!found && headers.indexOf('checkpoint (MiB)') >= 0 && headers.indexOf('seeds') >= 0) {"
        "    found = table; index = headers.indexOf('checkpoint (MiB)'); }});"
        "found.tHead.rows[0].cells[index].click();"
        "return Array.prototype.map.call(found.tBodies[0].rows, function (r) { return r.cells[index].textContent; });")
    values = [float(v.split(" ")[0].replace(",", "")) for v in column if v != "n/a"]
    assert values == sorted(values) and len(values) > 2
