"""Record a real browser session against the demo platform as a HAR file (headless Chromium).

Playwright drives Debian's /usr/bin/chromium (no browser download) through the demo's console
page, which signs up, signs in, creates an order, pays it and lists things, with think times.

    python -m tests.har_recording http://127.0.0.1:8000 tests/fixtures/demo-session.har
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"


def record(base_url: str, har_path: Path, *, think_ms: int = 300, timeout_s: float = 60) -> Path:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu"])
        try:
            context = browser.new_context(record_har_path=str(har_path), record_har_content="embed")
            page = context.new_page()
            page.goto(f"{base_url}/?think={think_ms}", timeout=timeout_s * 1000)
            page.wait_for_selector("#state.done, #state.failed", timeout=timeout_s * 1000)
            state = page.inner_text("#state")
            context.close()  # writes the HAR
        finally:
            browser.close()
    if state != "done":
        raise RuntimeError(f"the recorded session did not finish: {state}")
    return har_path


if __name__ == "__main__":
    print(record(sys.argv[1], Path(sys.argv[2])))
