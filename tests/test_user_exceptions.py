"""User-code exceptions count, and a run that sent nothing never passes (issue 27, finding 20).

A plain Locust file (no loadstack import) whose task looks for a login form the stand-in server
does not serve: plain ``locust --headless`` exits 1 because Locust counts the exceptions.  The
same file under ``loadstack run`` and under plain ``locust`` with loadstack's plugin must give the
same status, with the exceptions in ``summary.json`` (masked) and on the console.
"""

from __future__ import annotations

import http.server
import json
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from loadstack import exitcodes
from loadstack.processes import free_port
from tests.helpers import ROOT, loadstack, summary, write_profile

pytestmark = pytest.mark.slow

HOOKS = ROOT / "load-testing" / "loadstack" / "_hooks" / "loadstack_hooks.py"
SECRET = "Pw-Exc3ption-7731"

# Locust's own pattern (examples/… "fetch a page, read a form field, post it"), against a server
# whose page has no form: every task raises before anything is sent.
FORM_USER = f"""
import re
from locust import HttpUser, constant, task

PAGE = "<html><body>maintenance</body></html>"


class FormUser(HttpUser):
    wait_time = constant(0.05)

    @task
    def login(self):
        match = re.search(r'name="csrf" value="([^"]+)"', PAGE)
        if match is None:
            raise LookupError("no login form at postgresql://app:{SECRET}@127.0.0.1/app")
        self.client.post("/login", data={{"csrf": match[1]}})
"""

# Requests that succeed, then user code that raises: exceptions alone must fail the run.
AFTER_REQUEST = """
from locust import HttpUser, constant, task


class ReadThenBreak(HttpUser):
    wait_time = constant(0.05)

    @task
    def read(self):
        self.client.get("/page")
        {}["missing"]
"""

# Nothing raises and nothing is sent.
IDLE = """
from locust import User, constant, task


class Idle(User):
    wait_time = constant(0.2)

    @task
    def nothing(self):
        pass
"""


class Page(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        body = b"<html><body>maintenance</body></html>"
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def stand_in() -> Iterator[str]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", free_port()), Page)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def _profile(tmp_path: Path, name: str, source: str) -> Path:
    locustfile = tmp_path / f"{name}.py"
    locustfile.write_text(source)
    return write_profile(tmp_path / f"{name}.yml", locustfile=str(locustfile), users=2, run_time="3s")


def _plain_locust(files: str, host: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "locust", "-f", files, "--headless", "-u", "2", "-r", "2", "-t", "3s",
         "-H", host, "--only-summary"],
        capture_output=True, text=True, timeout=120, cwd=ROOT, env={**os.environ, **env},
    )  # fmt: skip


def test_user_code_exceptions_fail_the_run_as_in_plain_locust(tmp_path: Path, stand_in: str) -> None:
    profile = _profile(tmp_path, "form", FORM_USER)
    locustfile = str(tmp_path / "form.py")
    bare = _plain_locust(locustfile, stand_in, {})
    assert bare.returncode == exitcodes.FAILURES, "plain Locust counts the exceptions: " + bare.stderr[-2000:]

    out = loadstack(
        "run", "--profile", str(profile), "--host", stand_in, "--workers", "1", "--run-id", "exc-form",
        "--results-dir", str(tmp_path), timeout=180,
    )  # fmt: skip
    assert out.returncode == bare.returncode, out.stdout[-3000:] + out.stderr[-2000:]
    doc = summary(tmp_path, "exc-form")
    assert doc["totals"]["count"] == 0
    exceptions = doc["exceptions"]
    assert exceptions["count"] > 0 and exceptions["kinds"], exceptions
    first = exceptions["kinds"][0]
    assert (
        first["message"].startswith("no login form at postgresql://app:") and SECRET not in first["message"]
    )
    assert "form.py" in first["where"] and "in login" in first["where"], first
    assert doc["outcome"] == {"verdict": "no requests", "exit_code": exitcodes.FAILURES}
    assert "user code raised" in out.stdout and "no requests were sent" in out.stdout, out.stdout[-3000:]
    assert "verdict: pass" not in out.stdout and SECRET not in out.stdout + out.stderr
    assert SECRET not in (tmp_path / "exc-form" / "summary.json").read_text()

    # The same file under plain Locust with loadstack's plugin: the same status and summary.
    plugged = _plain_locust(
        f"{HOOKS},{locustfile}",
        stand_in,
        {
            "LOADSTACK_PROFILE": str(profile),
            "LOADSTACK_RESULTS_DIR": str(tmp_path),
            "LOADSTACK_RUN_ID": "exc-plain",
        },
    )
    assert plugged.returncode == bare.returncode, plugged.stderr[-3000:]
    assert summary(tmp_path, "exc-plain")["exceptions"]["count"] > 0


def test_exceptions_after_successful_requests_still_fail(tmp_path: Path, stand_in: str) -> None:
    profile = _profile(tmp_path, "after", AFTER_REQUEST)
    out = loadstack(
        "run", "--profile", str(profile), "--host", stand_in, "--workers", "1", "--run-id", "exc-after",
        "--results-dir", str(tmp_path), timeout=180,
    )  # fmt: skip
    assert out.returncode == exitcodes.FAILURES, out.stdout[-3000:] + out.stderr[-2000:]
    doc = summary(tmp_path, "exc-after")
    assert doc["totals"]["count"] > 0 and doc["totals"]["failures"] == 0
    assert doc["exceptions"]["count"] > 0 and doc["exceptions"]["kinds"][0]["message"] == "'missing'"
    assert doc["outcome"]["verdict"] == "exceptions"
    history = [json.loads(line) for line in (tmp_path / "history.jsonl").read_text().splitlines()]
    assert [h["verdict"] for h in history if h["run_id"] == "exc-after"] == ["exceptions"]


def test_a_run_that_sent_nothing_is_not_a_pass(tmp_path: Path, stand_in: str) -> None:
    profile = _profile(tmp_path, "idle", IDLE)
    out = loadstack(
        "run", "--profile", str(profile), "--host", stand_in, "--workers", "1", "--run-id", "idle",
        "--results-dir", str(tmp_path), timeout=180,
    )  # fmt: skip
    assert out.returncode == exitcodes.FAILURES, out.stdout[-3000:] + out.stderr[-2000:]
    doc = summary(tmp_path, "idle")
    assert doc["totals"]["count"] == 0 and doc["exceptions"] == {"count": 0, "kinds": []}
    assert doc["outcome"] == {"verdict": "no requests", "exit_code": exitcodes.FAILURES}
    assert "no requests were sent" in out.stdout
