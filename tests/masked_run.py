"""A real run whose request names, failure messages and exceptions carry secrets (test helper).

``tests/test_masked_outputs.py`` parses every file it leaves; ``tests/test_report_html_browser.py``
opens its ``report.html`` in Chromium.  The target is a small HTTP server on 127.0.0.1.
"""

from __future__ import annotations

import contextlib
import secrets
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from loadstack.processes import free_port
from tests.helpers import ROOT, loadstack, scraping, write_profile

LEAKY_NAMES = ROOT / "tests" / "locustfiles" / "leaky_names.py"


class _Ok(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, *_: object) -> None:
        pass


@contextlib.contextmanager
def target() -> Iterator[str]:
    """An HTTP server on 127.0.0.1 that answers every GET with 200."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Ok)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def new_canary() -> str:
    return f"canary{secrets.token_hex(6)}"


@dataclass
class Run:
    results: Path
    run_id: str
    canary: str
    output: str
    returncode: int
    live_report: str = ""  # a `loadstack ui` session's report as the web UI serves it mid-run
    scraped: list[str] = field(default_factory=list)  # the exporter's /metrics bodies during the run

    @property
    def dir(self) -> Path:
        return self.results / self.run_id


def leaky_profile(path: Path, canary: str, **fields: object) -> Path:
    """A profile of the leaky user: an arrival rate (so workload.svg is drawn) and SLO gates (junit.xml)."""
    return write_profile(
        path,
        locustfile=str(LEAKY_NAMES),
        user_classes={"LeakyUser": 1},
        rate="4/s",
        max_users=2,
        run_time="5s",
        thresholds=[
            {"target": "total", "p95_ms_max": 60_000},
            {"target": {"name": f"/ok?apikey={canary}ak"}, "error_rate_max": 1.0},
        ],
        **fields,
    )


def headless_run(tmp: Path, run_id: str, canary: str, host: str, env: dict[str, str] | None = None) -> Run:
    """``loadstack run`` of the leaky profile (one worker)."""
    profile = leaky_profile(tmp / f"{run_id}.yml", canary)
    out = loadstack(
        "run", "--profile", str(profile), "--host", host, "--workers", "1", "--run-id", run_id,
        "--results-dir", str(tmp / "results"), env={"MASKER_TEST_CANARY": canary, **(env or {})},
    )  # fmt: skip
    return Run(tmp / "results", run_id, canary, out.stdout + out.stderr, out.returncode)


def scraped_headless_run(tmp: Path, run_id: str, canary: str) -> Run:
    """A headless run against its own target, its exporter scraped while it runs.

    One such run serves every test that reads what a headless run leaves (the ``leaky_run``
    fixture in ``tests/conftest.py``): its files parsed, its ``report.html`` opened in Chromium.
    """
    port = free_port()
    with target() as host, scraping(f"http://127.0.0.1:{port}/metrics", 0.5) as scraped:
        run = headless_run(tmp, run_id, canary, host, env={"LOADSTACK_METRICS_PORT": str(port)})
    run.scraped = list(scraped)
    return run


def chain_run(tmp: Path, run_id: str, canary: str, host: str) -> Run:
    """``loadstack run`` of a chain whose step fails with a secret in its request path."""
    chain = tmp / f"{run_id}-chain.yml"
    chain.write_text(
        "name: leaky\n"
        "steps:\n"
        "  - name: fetch\n"
        f"    http: {{method: GET, path: '/ok?apikey={canary}ak&sig={canary}sg'}}\n"
        "    expect: {status: 201}\n"  # the target answers 200: every iteration fails here
    )
    profile = write_profile(
        tmp / f"{run_id}.yml",
        locustfile=str(ROOT / "load-testing" / "locustfiles" / "chain_users.py"),
        user_classes={"ConfiguredChainUser": 1},
        chains=[{"path": str(chain)}],
        users=2,
        run_time="5s",
        wait_time={"min": 0.05, "max": 0.1},
    )
    out = loadstack(
        "run", "--profile", str(profile), "--host", host, "--workers", "1", "--run-id", run_id,
        "--results-dir", str(tmp / "results"), "--no-metrics",
    )  # fmt: skip
    return Run(tmp / "results", run_id, canary, out.stdout + out.stderr, out.returncode)


def ui_session(tmp: Path, run_id: str, canary: str, host: str, port: int) -> Run:
    """A ``loadstack ui`` session: a swarm started and stopped as the web UI does, then ``loadstack stop``."""
    import json
    import time
    import urllib.parse
    import urllib.request

    profile = leaky_profile(tmp / f"{run_id}.yml", canary)
    env = {"MASKER_TEST_CANARY": canary, "LOADSTACK_STATE_DIR": str(tmp / "state")}
    started = loadstack(
        "ui", "--profile", str(profile), "--host", host, "--workers", "1", "--run-id", run_id,
        "--results-dir", str(tmp / "results"), "--web-port", str(port), "--no-metrics", env=env, timeout=180,
    )  # fmt: skip
    output = started.stdout + started.stderr
    live_report = ""
    try:
        assert started.returncode == 0, output
        url = f"http://127.0.0.1:{port}"
        body = urllib.parse.urlencode({"user_count": 2, "spawn_rate": 2}).encode()
        urllib.request.urlopen(urllib.request.Request(f"{url}/swarm", data=body), timeout=10)
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:  # until every request name has been seen at least once
            with urllib.request.urlopen(f"{url}/stats/requests", timeout=10) as resp:
                stats = json.load(resp)
            if len(stats["stats"]) > 10 and stats["stats"][-1]["num_failures"] > 0:
                break
            time.sleep(0.5)
        with urllib.request.urlopen(f"{url}/stats/report", timeout=30) as resp:  # the UI's "Download Report"
            live_report = resp.read().decode()
        urllib.request.urlopen(urllib.request.Request(f"{url}/stop", data=b"", method="POST"), timeout=10)
    finally:
        stopped = loadstack("stop", env=env, timeout=180)
        output += stopped.stdout + stopped.stderr
    return Run(tmp / "results", run_id, canary, output, stopped.returncode, live_report)


__all__ = ["Run", "chain_run", "headless_run", "new_canary", "scraped_headless_run", "target", "ui_session"]
