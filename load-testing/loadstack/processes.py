"""Child processes that cannot outlive loadstack, with masked logs.

Each child runs in its own process group (so a terminal's Ctrl-C reaches only
the runner, which then stops children in order) and gets ``PR_SET_PDEATHSIG``
so it is terminated even if the runner is killed with SIGKILL.  Its output is
read line by line, masked, written to a log file and optionally forwarded.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from loadstack.masking import Masker

_PR_SET_PDEATHSIG = 1


def die_with_parent() -> Callable[[], None]:
    """A ``preexec_fn`` that SIGTERMs the child when this process (the one starting it) dies, even
    by SIGKILL (Linux).

    This process may already have died between ``fork`` and the ``prctl`` call; the child then
    belongs to another process (init or a subreaper) and would never get the signal, so it ends
    itself.  The parent's pid is taken now, in the parent, and handed to the child.
    """
    parent = os.getpid()

    def preexec() -> None:  # runs in the child between fork and exec
        try:
            libc = ctypes.CDLL("libc.so.6", use_errno=True)
            libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
        except OSError:
            return
        if os.getppid() != parent:
            os.kill(os.getpid(), signal.SIGTERM)

    return preexec


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def port_open(host: str, port: int, timeout: float = 0.5) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


class Child:
    """One supervised process; ``on_line(raw, masked)`` sees each output line (print only ``masked``)."""

    def __init__(
        self,
        name: str,
        cmd: Sequence[str],
        *,
        env: dict[str, str],
        log_path: Path,
        masker: Masker,
        on_line: Callable[[str, str], None] | None = None,
        tied_to_parent: bool = True,
    ) -> None:
        self.name = name
        self.cmd = list(cmd)
        self.log_path = log_path
        log_path.parent.mkdir(parents=True, exist_ok=True)
        self.proc = subprocess.Popen(
            self.cmd,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=die_with_parent() if tied_to_parent else None,
            text=True,
            encoding="utf-8",
            errors="replace",
            bufsize=1,
        )
        self._masker = masker
        self._on_line = on_line
        self.tail: list[str] = []
        self._pump = threading.Thread(target=self._copy_output, name=f"log-{name}", daemon=True)
        self._pump.start()

    @property
    def pid(self) -> int:
        return self.proc.pid

    def _copy_output(self) -> None:
        assert self.proc.stdout is not None
        with open(self.log_path, "a", encoding="utf-8") as log:
            for raw in self.proc.stdout:
                original = raw.rstrip("\n")
                line = self._masker(original)
                log.write(line + "\n")
                log.flush()
                self.tail.append(line)
                del self.tail[:-40]
                if self._on_line is not None:
                    self._on_line(original, line)

    def alive(self) -> bool:
        return self.proc.poll() is None

    def send_signal(self, sig: int) -> None:
        """Signal the child's whole process group."""
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.proc.pid, sig)

    def wait(self, timeout: float | None = None) -> int | None:
        try:
            code = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            return None
        self._pump.join(timeout=2)
        return code

    def stop(self, first: int = signal.SIGTERM, grace: float = 10.0, then: int | None = None) -> int | None:
        """``first`` signal; after ``grace`` seconds ``then`` (if given) and finally SIGKILL."""
        if self.alive():
            for sig in (first, then):
                if sig is None:
                    continue
                self.send_signal(sig)
                if self.wait(grace) is not None:
                    break
            else:
                self.send_signal(signal.SIGKILL)
                self.wait(5)
        else:
            # The leader may be gone while something it started still runs in its group.
            self.send_signal(signal.SIGKILL)
        return self.proc.returncode


# How long a start-up waits for readiness (a port, a health check, the state file, the workers).
# A busy machine makes start-up slow, and that must not fail the run; a process that dies ends its
# wait at once, so the limit only bounds a process that lives but never becomes ready.
STARTUP_LIMIT_S = 300.0


def wait_until(predicate: Callable[[], bool], timeout: float, interval: float = 0.1) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return predicate()
