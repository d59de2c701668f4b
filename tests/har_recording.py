"""Record real browser sessions against the demo platform as HAR files (headless Chromium).

Playwright drives Debian's /usr/bin/chromium (no browser download).  Every request is routed
through Playwright and continued unchanged: only then does Chromium hand over request bodies that
hold files (multipart uploads), so the HAR has them as DevTools would show them.

Sessions:
- :func:`record` (the JSON API flow): the demo's console page signs up, signs in, creates an
  order, pays it and lists things, with think times;
- :func:`record_form_login`: the server-rendered sign-in form with its hidden CSRF token;
- :func:`record_upload`: a multipart form with a text field and a file.

    python -m tests.har_recording http://127.0.0.1:8000 tests/fixtures/demo-session.har
"""

from __future__ import annotations

import contextlib
import shutil
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


@contextlib.contextmanager
def _recording(har_path: Path) -> Iterator[Any]:
    """A page whose traffic goes to ``har_path`` when the block ends."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            context = browser.new_context(record_har_path=str(har_path), record_har_content="embed")
            page = context.new_page()
            page.route("**/*", lambda route: route.continue_())
            try:
                yield page
            finally:
                context.close()  # writes the HAR
        finally:
            browser.close()


def _session(har_path: Path, steps: Callable[[Any], None]) -> Path:
    with _recording(har_path) as page:
        steps(page)
    return har_path


def record(base_url: str, har_path: Path, *, think_ms: int = 300, timeout_s: float = 60) -> Path:
    """The console's JSON API flow: sign up, sign in, order, pay, list."""
    state = {}

    def steps(page: Any) -> None:
        page.goto(f"{base_url}/?think={think_ms}", timeout=timeout_s * 1000)
        page.wait_for_selector("#state.done, #state.failed", timeout=timeout_s * 1000)
        state["result"] = page.inner_text("#state")

    _session(har_path, steps)
    if state.get("result") != "done":
        raise RuntimeError(f"the recorded session did not finish: {state.get('result')}")
    return har_path


def record_form_login(
    base_url: str, har_path: Path, email: str, password: str, *, timeout_s: float = 30
) -> Path:
    """Open the sign-in page, type the credentials, submit, land on the account page."""

    def steps(page: Any) -> None:
        page.goto(f"{base_url}/forms/login", timeout=timeout_s * 1000)
        page.fill("input[name=username]", email)
        page.fill("input[name=password]", password)
        with page.expect_navigation(url=f"{base_url}/forms/account", timeout=timeout_s * 1000):
            page.click("#sign-in")
        if "Signed in as" not in page.inner_text("#who"):
            raise RuntimeError("the recorded sign-in did not succeed")

    return _session(har_path, steps)


def record_upload(
    base_url: str, har_path: Path, *, title: str, filename: str, content_type: str, data: bytes,
    timeout_s: float = 30,
) -> Path:  # fmt: skip
    """Fill the upload form (a text field and a file) and submit it."""

    def steps(page: Any) -> None:
        page.goto(f"{base_url}/forms/upload", timeout=timeout_s * 1000)
        page.fill("input[name=title]", title)
        page.set_input_files(
            "#attachment", files=[{"name": filename, "mimeType": content_type, "buffer": data}]
        )
        with page.expect_navigation(url=f"{base_url}/api/v1/uploads", timeout=timeout_s * 1000):
            page.click("#upload")

    return _session(har_path, steps)


if __name__ == "__main__":
    print(record(sys.argv[1], Path(sys.argv[2])))
