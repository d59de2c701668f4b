from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator

import pytest


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def demo_url() -> Iterator[str]:
    """A demo platform process shared by tests that need a fixed target (or its /api/status)."""
    port = _free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "loadstack", "demo", "serve", "--port", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(f"{url}/health", timeout=1)
            break
        except OSError:
            time.sleep(0.1)
    else:
        proc.kill()
        raise RuntimeError("demo platform did not start")
    yield url
    proc.terminate()
    proc.wait(10)


# The suite runs natively unless a test asks for --docker: a Docker engine left running by the
# container tests must not turn every other `loadstack run` into a compose run.
os.environ.setdefault("LOADSTACK_RUN_MODE", "native")
