"""The master waits for its target's health path before the first user, as it waits for its workers.

In a cluster the target starts beside the master (tests/k8s proves that on a real kubelet); here
the same master and worker processes run locally: the target starts only once the master says it
is waiting, a target that answers 503 is not ready and ends the run with exit 2 before any load,
and SIGTERM during the wait ends it with exit 130.
"""

from __future__ import annotations

import contextlib
import http.server
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from loadstack.processes import STARTUP_LIMIT_S, free_port, wait_until
from loadstack_demo.process import demo_platform
from tests.helpers import LOCUSTFILES, ROOT, assert_no_orphans, summary, write_profile

WAITING = "waiting up to"


def _profile(tmp_path: Path) -> Path:
    return write_profile(
        tmp_path / "ready.yml",
        locustfile=str(LOCUSTFILES / "http_users.py"),
        user_classes={"OrderUser": 1},
        wait_time={"min": 0.1, "max": 0.3},
        thresholds=[{"target": "total", "error_rate_max": 0.0}],
    )


def _master(tmp_path: Path, profile: Path, run_id: str, host: str, port: int) -> list[str]:
    return [sys.executable, "-m", "loadstack", "master", "--headless", "--profile", str(profile),
            "--expect-workers", "1", "--bind", "127.0.0.1", "--master-port", str(port), "--run-id", run_id,
            "--results-dir", str(tmp_path), "-u", "2", "-r", "2", "-t", "4s", "--host", host]  # fmt: skip


def _env(wait_s: str) -> dict[str, str]:
    return {**os.environ, "LOCUST_METRICS_EXPORT": "0", "LOADSTACK_TARGET_WAIT": wait_s}


@contextlib.contextmanager
def _started(cmd: list[str], env: dict[str, str]) -> Iterator[subprocess.Popen[str]]:
    proc = subprocess.Popen(
        cmd, env=env, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.communicate(timeout=30)


def _read_until(proc: subprocess.Popen[str], marker: str) -> str:
    """The master's output up to the line with ``marker`` (or to its end if it exits first)."""
    seen = []
    assert proc.stdout is not None
    for line in proc.stdout:
        seen.append(line)
        if marker in line:
            break
    return "".join(seen)


@contextlib.contextmanager
def _answering(status: int) -> Iterator[str]:
    """A local HTTP server that answers every GET with ``status``; yields its URL."""
    paths: list[str] = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            paths.append(self.path)
            self.send_response(status)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *_: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        server.server_close()
    assert paths and set(paths) == {"/health"}, paths  # only the health path, never a user's request


@pytest.mark.slow
def test_the_master_waits_for_a_target_that_starts_late_and_the_run_has_no_failures(tmp_path: Path) -> None:
    profile = _profile(tmp_path)
    target_port, master_port = free_port(), free_port()
    host = f"http://127.0.0.1:{target_port}"
    worker = [sys.executable, "-m", "loadstack", "worker", "--profile", str(profile), "--master-host",
              "127.0.0.1", "--master-port", str(master_port)]  # fmt: skip
    env = _env("240")
    master = _master(tmp_path, profile, "ready-late", host, master_port)
    with _started(master, env) as proc, _started(worker, env):
        before = _read_until(proc, WAITING)
        assert WAITING in before and f"{host}/health" in before, before[-3000:]
        # The target starts only now: nothing answered on its port until the master was waiting.
        with demo_platform(port=target_port) as url:
            assert url == host
            out, _ = proc.communicate(timeout=STARTUP_LIMIT_S)
    out = before + out
    assert proc.returncode == 0, out[-3000:]
    assert "target answered HTTP 200" in out
    doc = summary(tmp_path, "ready-late")
    # Without the wait the first requests would have been refused: failures, exit 3 (error_rate_max 0).
    assert doc["totals"]["count"] > 0 and doc["totals"]["failures"] == 0 and doc["verdict"] == "pass"
    assert doc["workers"] == 1
    assert_no_orphans("ready-late")


@pytest.mark.slow
def test_a_target_that_never_becomes_ready_is_exit_2_before_any_load(tmp_path: Path) -> None:
    profile = _profile(tmp_path)
    with _answering(503) as host, _started(_master(tmp_path, profile, "never-ready", host, free_port()),
                                           _env("3")) as proc:  # fmt: skip
        out, _ = proc.communicate(timeout=STARTUP_LIMIT_S)
    assert proc.returncode == 2, out[-3000:]
    assert f"the target did not answer {host}/health within 3 s" in out and "last: HTTP 503" in out
    assert "Traceback" not in out
    assert not (tmp_path / "never-ready" / "summary.json").exists()


@pytest.mark.slow
def test_sigterm_while_waiting_for_the_target_is_exit_130(tmp_path: Path) -> None:
    profile = _profile(tmp_path)
    host = f"http://127.0.0.1:{free_port()}"  # nothing listens: refused, again and again
    with _started(_master(tmp_path, profile, "wait-term", host, free_port()), _env("600")) as proc:
        before = _read_until(proc, WAITING)
        assert WAITING in before, before[-3000:]
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=STARTUP_LIMIT_S)
    assert proc.returncode == 130, (before + out)[-3000:]
    assert wait_until(lambda: (tmp_path / "wait-term" / "summary.json").is_file(), 5)
    assert summary(tmp_path, "wait-term")["outcome"]["exit_code"] == 130
