"""`loadstack ui` / `status` / `stop`: a background web-UI stack that a user drives from the browser."""

from __future__ import annotations

import json
import time
import urllib.parse
import urllib.request
from pathlib import Path

import pytest

from loadstack.processes import free_port
from tests.helpers import assert_no_orphans, loadstack, summary

pytestmark = pytest.mark.slow


def test_ui_stack_starts_reports_status_and_stops_cleanly(tmp_path: Path) -> None:
    port = free_port()
    env = {"LOADSTACK_STATE_DIR": str(tmp_path / "state")}
    run_id = "ui-e2e"
    common = ["--profile", "smoke", "--workers", "2", "--results-dir", str(tmp_path), "--run-id", run_id]
    started = loadstack("ui", *common, "--web-port", str(port), env=env, timeout=180)
    try:
        assert started.returncode == 0, started.stdout + started.stderr
        url = f"http://127.0.0.1:{port}"
        assert url in started.stdout
        with urllib.request.urlopen(url, timeout=5) as resp:
            assert resp.status == 200 and "locust" in resp.read().decode().lower()

        status = loadstack("status", env=env)
        assert "master" in status.stdout and "worker-2" in status.stdout and "demo" in status.stdout
        assert status.stdout.count("running") >= 4, status.stdout

        # What the user does in the browser: start a swarm, watch the workers and stats.
        body = urllib.parse.urlencode({"user_count": 3, "spawn_rate": 3}).encode()
        urllib.request.urlopen(urllib.request.Request(f"{url}/swarm", data=body), timeout=5)
        deadline = time.monotonic() + 180  # readiness, however slow the machine
        while time.monotonic() < deadline:
            with urllib.request.urlopen(f"{url}/stats/requests", timeout=5) as resp:
                stats = json.load(resp)
            if stats["user_count"] == 3 and stats["stats"][-1]["num_requests"] > 0:
                break
            time.sleep(0.5)
        assert stats["worker_count"] == 2 and stats["user_count"] == 3, stats
    finally:
        stopped = loadstack("stop", env=env, timeout=120)
    assert stopped.returncode == 0
    assert "nothing running" in loadstack("status", env=env).stdout
    doc = summary(tmp_path, run_id)
    assert doc["totals"]["count"] > 0
    assert_no_orphans(run_id)
