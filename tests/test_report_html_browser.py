"""Each run's ``report.html`` as a person opens it: in Chromium, rendered, with its data and charts.

Locust's report is a JavaScript bundle whose data (request names, failures, exceptions) is JSON
inside a ``<script>``.  When the masker rewrote the bundle's code, every report was a blank page
and no test noticed, because tests read the file's bytes.  Here the page runs: no console or page
error, the stats table lists the run's (masked) request names, the charts are drawn, and no
secret is on the page.  One report per way a run is made: a headless run, a chain run and a
``loadstack ui`` session (all three set ``report.html`` in ``RunMaster._result_files``).
Screenshots go to ``test-artifacts/screenshots/``.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import TimeoutError as PlaywrightTimeout

from loadstack.processes import free_port
from tests.helpers import ROOT
from tests.masked_run import Run, chain_run, new_canary, target, ui_session

pytestmark = pytest.mark.slow

SCREENSHOTS = ROOT / "test-artifacts" / "screenshots"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-sync",
]


@contextlib.contextmanager
def chromium_page() -> Iterator[tuple[Any, list[str]]]:
    """A page of Debian's Chromium and the list its console errors and page errors are added to."""
    from playwright.sync_api import sync_playwright

    if not Path(CHROMIUM).exists():
        pytest.skip(f"no Chromium at {CHROMIUM}")
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            errors: list[str] = []
            page.on(
                "console",
                lambda m: errors.append(console_error(m)) if m.type == "error" else None,
            )
            page.on("pageerror", lambda e: errors.append(f"page error: {e}"))
            yield page, errors
        finally:
            browser.close()


def console_error(message: Any) -> str:
    """A console error with the URL it is about (a resource that failed to load names none in its text)."""
    return f"console error: {message.text} ({message.location.get('url', '')})"


def real_errors(errors: list[str]) -> list[str]:
    """Errors but the favicon: Locust's report links ``../../assets/favicon-*.png``, which a report
    file opened from disk has not got beside it (plain ``locust --html`` reports alike)."""
    return [e for e in errors if not ("Failed to load resource" in e and "/assets/favicon-" in e)]


LEAKY_NAMES = ["/ok?refresh_token=***&page=1", "/ok?key=***&sig=***", "redis://127.0.0.1:6379/0?password=***"]


def make_run(kind: str, tmp: Path, leaky_run: Run) -> tuple[Run, list[str]]:
    """A run of ``kind`` and request names its report must show (as masked).

    The headless run is the session's ``leaky_run`` (tests/test_masked_outputs.py parses its files)."""
    if kind == "headless":
        return leaky_run, LEAKY_NAMES
    canary = new_canary()
    with target() as host:
        if kind == "chain":
            return chain_run(tmp, "chain", canary, host), ["leaky/fetch"]
        return ui_session(tmp, "ui", canary, host, free_port()), LEAKY_NAMES


@pytest.mark.parametrize("kind", ["headless", "chain", "ui"])
def test_report_html_renders_in_chromium(tmp_path: Path, kind: str, leaky_run: Run) -> None:
    run, names = make_run(kind, tmp_path, leaky_run)
    canary = run.canary
    report = run.dir / "report.html"
    assert report.exists(), run.output[-3000:]
    with chromium_page() as (page, errors):
        page.goto(report.as_uri(), wait_until="load")
        # The stats table is React's work: it exists only if the bundle ran.
        try:
            page.wait_for_selector("table", timeout=60_000)
        except PlaywrightTimeout:
            pytest.fail(f"report.html did not render (blank page); errors: {errors}")
        for name in names:
            page.get_by_text(name, exact=True).first.wait_for(timeout=30_000)
        # Charts: ECharts draws into a <canvas> (or an <svg>) inside each chart's container.
        page.wait_for_function(
            "() => [...document.querySelectorAll('canvas, svg')].some(e => e.clientWidth > 100)",
            timeout=60_000,
        )
        charts = page.evaluate(
            "() => [...document.querySelectorAll('canvas')].filter(c => c.width > 100 && c.height > 100).length"
        )
        text = page.inner_text("body")
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(
            path=str(SCREENSHOTS / ("report-html.png" if kind == "headless" else f"report-html-{kind}.png")),
            full_page=True,
        )
    assert real_errors(errors) == [], errors
    assert charts >= 1, "no chart was drawn"
    assert canary not in text and canary not in page_source(report)
    if kind == "ui":  # the web UI's own report, rendered by the same masked path
        assert "window.templateArgs" in run.live_report and canary not in run.live_report


def page_source(path: Path) -> str:
    return path.read_text(encoding="utf-8")
