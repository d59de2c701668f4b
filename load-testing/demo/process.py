"""The demo platform as a throwaway child process, for tests, benchmarks and scripts.

``loadstack run`` supervises its own demo (logs, masking, consumer); this is the light version
for code that only needs "a demo platform at some URL" for the length of a ``with`` block.
"""

from __future__ import annotations

import contextlib
import subprocess
import sys
import time
from collections.abc import Iterator

from loadstack import safety
from loadstack.processes import STARTUP_LIMIT_S, free_port
from loadstack.settings import current


@contextlib.contextmanager
def demo_platform(
    env: dict[str, str] | None = None, store: str = "memory", port: int | None = None
) -> Iterator[str]:
    """Start ``loadstack demo serve`` on a local port (default: a free one), yield its URL once /health answers.

    ``env`` adds settings (auth, faults) on top of this process's environment; ``store`` is
    ``memory``, ``backend`` or ``auto``; ``port`` is for a caller that named the URL before the
    platform existed (a master already waiting for it).
    """
    port = port or free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "loadstack", "demo", "serve", "--port", str(port), "--store", store],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=current().child_environment(env),
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + STARTUP_LIMIT_S  # readiness; ends at once if it exits
        while True:
            try:
                safety.urlopen(f"{url}/health", allow_remote=False, timeout=1).close()
                break
            except OSError:
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise RuntimeError(f"demo platform did not start on {url}") from None
                time.sleep(0.1)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
