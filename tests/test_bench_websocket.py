"""The WebSocket bench under a disturbance: a real run of ``python -m bench websocket`` with two
spinning processes beside it must measure its windows again and name what disturbed them."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.shards import hogging_the_cpu

ROOT = Path(__file__).resolve().parents[1]
BENCH = [
    "-m",
    "bench",
    "websocket",
    "--levels",
    "10",
    "--rounds",
    "5",
    "--duration",
    "0.5",
    "--settle",
    "0.2",
]
SPIN = "import time\nend = time.monotonic() + 90\nwhile time.monotonic() < end: pass\n"

pytestmark = pytest.mark.slow


def test_a_window_the_rest_of_the_machine_disturbed_is_measured_again_and_named() -> None:
    with hogging_the_cpu():
        spinners = [subprocess.Popen([sys.executable, "-c", SPIN]) for _ in range(2)]
        try:
            out = subprocess.run(
                [sys.executable, *BENCH],
                cwd=ROOT,
                capture_output=True,
                text=True,
                timeout=180,
            )
        finally:
            for proc in spinners:
                proc.kill()
                proc.wait()
    assert out.returncode == 0, out.stdout + out.stderr
    again = [line for line in out.stdout.splitlines() if "window measured again" in line]
    assert again, out.stdout
    assert any(f"[{proc.pid}]" in line for line in again for proc in spinners), again
    assert "10 connections:" in out.stdout and "failures per round [0, 0, 0, 0, 0]" in out.stdout, out.stdout
