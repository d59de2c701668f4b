"""The WebSocket user against the demo platform's /ws/stream: protocol steps, 50 concurrent connections."""

from __future__ import annotations

import json
import threading
import time
import urllib.request
from pathlib import Path

import pytest
import websocket

from tests.helpers import assert_no_orphans, loadstack, rows_by_name, summary, write_profile

pytestmark = pytest.mark.slow


def test_protocol_errors_get_error_frames_not_dropped_sockets(demo_url: str) -> None:
    ws = websocket.create_connection(demo_url.replace("http", "ws") + "/ws/stream", timeout=5)
    ws.send("{not json")
    assert json.loads(ws.recv())["type"] == "error"
    ws.send(json.dumps({"cmd": "configure", "rate": -1}))
    assert json.loads(ws.recv())["type"] == "error"
    ws.send(json.dumps({"cmd": "start", "rate": 100}))
    frames = [json.loads(ws.recv()) for _ in range(5)]
    assert frames[0] == {
        "type": "ack",
        "cmd": "start",
        "config": {"rate": 100.0, "channels": 2, "running": True},
    }
    seqs = [f["seq"] for f in frames[1:]]
    assert seqs == list(range(seqs[0], seqs[0] + 4)) and all("ts" in f for f in frames[1:])
    ws.send(json.dumps({"cmd": "stop"}))
    while (msg := json.loads(ws.recv()))["type"] != "ack":
        assert msg["type"] == "data"
    assert msg["cmd"] == "stop"
    ws.close()


def test_fifty_concurrent_websocket_users_without_failures(tmp_path: Path, demo_url: str) -> None:
    profile = write_profile(
        tmp_path / "ws50.yml",
        users=50,
        spawn_rate=50,
        run_time="16s",
        user_classes={"StreamUser": 1},
        wait_time={"min": 0.5, "max": 1.0},
        env={"LOADSTACK_WS_KEEP_OPEN": "1", "LOADSTACK_WS_RATE": "10", "LOADSTACK_WS_FRAMES": "10"},
    )
    run_id = "ws50"
    samples: list[int] = []
    stop = threading.Event()

    def sample_connections() -> None:
        while not stop.is_set():
            with urllib.request.urlopen(f"{demo_url}/api/status", timeout=2) as resp:
                samples.append(json.load(resp)["ws"]["connections"])
            time.sleep(0.5)

    sampler = threading.Thread(target=sample_connections, daemon=True)
    sampler.start()
    result = loadstack(
        "run", "--profile", str(profile), "--host", demo_url, "--workers", "2",
        "--run-id", run_id, "--results-dir", str(tmp_path), timeout=180,
    )  # fmt: skip
    stop.set()
    sampler.join(5)
    assert result.returncode == 0, result.stdout + result.stderr
    doc = summary(tmp_path, run_id)
    rows = rows_by_name(doc)
    assert rows[("WS", "stream/connect")]["count"] >= 50
    assert rows[("WS", "stream/receive")]["count"] >= 50 * 10
    assert doc["totals"]["failures"] == 0, doc["errors"]
    held = sum(1 for n in samples if n >= 50) * 0.5
    assert held >= 10, f"50 connections held for only {held}s: {samples}"
    assert_no_orphans(run_id)
