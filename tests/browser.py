"""A person's browser for the tests: Debian's Chromium driven by Playwright.

Tests that check a page open it here rather than read its bytes: a page whose script does not
parse, or whose picture has no namespace, looks fine as text and blank in a browser.  A
:class:`Browser` page records everything a person would notice in the developer console
(console errors, uncaught exceptions, requests that failed) and refuses every request that
leaves the machine, so a page that needs the internet fails here as it would offline.
Screenshots go to ``test-artifacts/screenshots/<name>.png`` so a reviewer can look at what the
test saw.
"""

from __future__ import annotations

import contextlib
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from tests.helpers import ROOT

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
# Without the background-networking flags Chromium phones home at start, which a closed network
# answers with refused connections (logged as errors that are not the page's).
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
SCREENSHOTS = ROOT / "test-artifacts" / "screenshots"
LOCAL_HOSTS = {"127.0.0.1", "localhost"}
# Playwright's waits, in ms: generous, since a busy machine slows a page but must not fail it.
WAIT_MS = 60_000


class Watched:
    """One page and what a person would see go wrong in its developer console."""

    def __init__(self, page: Any) -> None:
        self.page = page
        self.problems: list[str] = []
        page.on("console", self._console)
        page.on("pageerror", lambda exc: self.problems.append(f"uncaught exception: {exc}"))
        page.on(
            "requestfailed",
            lambda req: self.problems.append(f"request failed: {req.url} ({req.failure})"),
        )

    def _console(self, message: Any) -> None:
        if message.type in ("error", "assert"):
            self.problems.append(f"console {message.type}: {message.text} at {message.location}")

    def goto(self, url: str) -> None:
        """Open ``url`` and wait until it and its resources have loaded."""
        response = self.page.goto(url, wait_until="load", timeout=WAIT_MS)
        assert response is None or response.ok, f"{url} answered {response.status}"

    def assert_clean(self) -> None:
        """No console error, no uncaught exception, no failed or refused request so far."""
        assert not self.problems, "\n".join(self.problems)

    def screenshot(self, name: str, element: Any = None) -> Path:
        """Save what the page (or one ``element`` of it) shows as
        ``test-artifacts/screenshots/<name>.png`` and check it is not blank.

        A picture opened on its own (an SVG document) has no scrollable body, so it is taken
        by its element rather than as a full page."""
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        path = SCREENSHOTS / f"{name}.png"
        if element is not None:
            element.screenshot(path=str(path), timeout=WAIT_MS)
        else:
            self.page.screenshot(path=str(path), full_page=True, timeout=WAIT_MS)
        assert_not_blank(path)
        return path


def assert_not_blank(png: Path, at_least: int = 20) -> None:
    """A screenshot of a rendered page has many colours (text, lines); a blank page has one or two."""
    from PIL import Image

    with Image.open(png) as image:
        colors = image.convert("RGB").getcolors(maxcolors=1_000_000)
    assert colors is not None and len(colors) >= at_least, (
        f"{png.name} shows a blank page ({len(colors or [])} colours)"
    )


def _local_only(route: Any, problems: list[str]) -> None:
    url = route.request.url
    parts = urlsplit(url)
    if parts.scheme in ("file", "data", "blob", "about") or parts.hostname in LOCAL_HOSTS:
        route.continue_()
        return
    problems.append(f"request to another machine refused: {url}")
    route.abort("blockedbyclient")


@contextlib.contextmanager
def browser(width: int = 1300, height: int = 900) -> Iterator[Any]:
    """A Chromium browser; ``open_page()`` on the yielded object gives a :class:`Watched` page."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            context = chromium.new_context(viewport={"width": width, "height": height})
            context.set_default_timeout(WAIT_MS)
            yield _Opener(context)
        finally:
            chromium.close()


class _Opener:
    def __init__(self, context: Any) -> None:
        self.context = context

    def open_page(self) -> Watched:
        page = self.context.new_page()
        watched = Watched(page)
        page.route("**/*", lambda route: _local_only(route, watched.problems))
        return watched
