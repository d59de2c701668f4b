"""Shared helpers for the test suite: run the real CLI, find leftover processes, read results."""

from __future__ import annotations

import contextlib
import json
import os
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
LOCUSTFILES = ROOT / "load-testing" / "locustfiles"


def loadstack(*args: str, env: dict[str, str] | None = None, timeout: float = 300, cwd: Path | None = None):
    """Run the real ``loadstack`` CLI in a subprocess."""
    return subprocess.run(
        [sys.executable, "-m", "loadstack", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, **(env or {})},
        cwd=cwd or ROOT,
    )


def loadstack_in_process(*args: str) -> subprocess.CompletedProcess[str]:
    """The real ``loadstack`` CLI's ``main()`` in this process, its stdout and stderr captured.

    For checks of an exit status and its messages only (``chain validate`` of a bad file): a
    subprocess adds a Python and Locust start-up, seconds on a busy machine, and proves no more.
    Keep the subprocess (:func:`loadstack`) where the process itself is the subject."""
    import io

    from loadstack.cli import main

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(list(args))
    return subprocess.CompletedProcess(["loadstack", *args], code, out.getvalue(), err.getvalue())


def start_loadstack(*args: str, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
    """Start the real ``loadstack`` CLI without waiting (to act on it mid-run); stderr goes to stdout."""
    return subprocess.Popen(
        [sys.executable, "-m", "loadstack", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, **(env or {})},
        cwd=ROOT,
    )


def processes_with_env(name: str, value: str) -> list[int]:
    """PIDs of live processes whose environment has ``name=value`` (how a run's children are tagged)."""
    needle = f"{name}={value}".encode()
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            environ = (entry / "environ").read_bytes()
            status = (entry / "status").read_text()
        except OSError:
            continue
        if "State:\tZ" in status:
            continue
        if needle in environ.split(b"\0"):
            found.append(int(entry.name))
    return found


def assert_no_orphans(run_id: str, wait: float = 60.0) -> None:
    """No process of the run is left; waits (generously: a busy machine reaps slowly) for them to exit."""
    deadline = time.monotonic() + wait
    while True:
        left = processes_with_env("LOADSTACK_RUN_ID", run_id)
        if not left or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    cmdlines = []
    for pid in left:
        with contextlib.suppress(OSError):
            cmdlines.append(Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode())
    assert not left, f"processes of run {run_id} still alive: {cmdlines}"


def write_profile(path: Path, **fields: Any) -> Path:
    """A profile file (YAML is a superset of JSON, so JSON text is fine)."""
    data = {
        "name": path.stem,
        "description": "test profile",
        "locustfile": str(LOCUSTFILES / "mixed_users.py"),
        "users": 2,
        "spawn_rate": 10,
        "run_time": "5s",
        **fields,
    }
    path.write_text(json.dumps(data, indent=2))
    return path


def one_chain_profile(path: Path, chain: Path) -> Path:
    """One user running one chain file for a few seconds: the guard tests' runs aimed elsewhere."""
    return write_profile(
        path,
        locustfile=str(LOCUSTFILES / "chain_users.py"),
        user_classes={"ConfiguredChainUser": 1},
        chains=[{"path": str(chain)}],
        users=1,
        run_time="6s",
        wait_time={"min": 0.2, "max": 0.4},
    )


def summary(results_dir: Path, run_id: str) -> dict[str, Any]:
    return json.loads((results_dir / run_id / "summary.json").read_text())


def rows_by_name(summary_doc: dict[str, Any]) -> dict[tuple[str, str], dict[str, Any]]:
    return {(r["type"], r["name"]): r for r in summary_doc["requests"]}


@contextlib.contextmanager
def scraping(url: str, every: float, keep: int | None = None) -> Iterator[list[str]]:
    """Scrape a /metrics URL in the background while the block runs (a run in progress).

    Yields the list of scraped texts that already carry Locust request counters; stops after
    ``keep`` of them, or when the block ends.
    """
    scraped: list[str] = []
    stop = threading.Event()

    def loop() -> None:
        while not stop.is_set() and (keep is None or len(scraped) < keep):
            try:
                with urllib.request.urlopen(url, timeout=2) as resp:
                    text = resp.read().decode()
                if "locust_requests_total{" in text:
                    scraped.append(text)
            except OSError:
                pass
            stop.wait(every)

    thread = threading.Thread(target=loop, daemon=True)
    thread.start()
    try:
        yield scraped
    finally:
        stop.set()
        thread.join(5)


class PrivateRedis:
    """A redis-server of our own, so restarting it cannot disturb the machine's shared one."""

    def __init__(self, port: int, *args: str) -> None:
        self.port = port
        self.args = args
        self.proc: subprocess.Popen | None = None

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [
                "redis-server",
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                *self.args,
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 120  # readiness, however slow the machine
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("private redis did not start")

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            self.proc.wait(10)
            self.proc = None


# The JUnit schema CI systems validate against: Jenkins' xunit junit-10.xsd, as pytest's own test
# suite ships it (MIT).  Taken from pytest's source distribution on PyPI, once, into a cache.
JUNIT_XSD_FROM = "pytest==9.2.0"
JUNIT_XSD_CACHE = (
    Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "loadstack-tests" / "junit-10.xsd"
)


def junit_schema() -> Any:
    """An ``xmlschema.XMLSchema`` of junit-10.xsd (downloads pytest's sdist on first use)."""
    import tarfile
    import tempfile

    import xmlschema

    if not JUNIT_XSD_CACHE.exists():
        with tempfile.TemporaryDirectory() as tmp:
            got = subprocess.run(
                [sys.executable, "-m", "pip", "download", JUNIT_XSD_FROM, "--no-binary", ":all:", "--no-deps",
                 "-q", "-d", tmp],
                capture_output=True, text=True, timeout=300,
            )  # fmt: skip
            sdists = list(Path(tmp).glob("pytest-*.tar.gz"))
            assert sdists, (
                f"could not download {JUNIT_XSD_FROM}'s sdist for junit-10.xsd: {got.stderr[-500:]}"
            )
            with tarfile.open(sdists[0]) as tar:
                member = next(m for m in tar.getmembers() if m.name.endswith("/junit-10.xsd"))
                data = tar.extractfile(member).read()  # type: ignore[union-attr]
        JUNIT_XSD_CACHE.parent.mkdir(parents=True, exist_ok=True)
        # Whole or not at all: the other shard may be reading the cache meanwhile.
        partial = JUNIT_XSD_CACHE.with_name(f"{JUNIT_XSD_CACHE.name}.{os.getpid()}")
        partial.write_bytes(data)
        partial.replace(JUNIT_XSD_CACHE)
    return xmlschema.XMLSchema(str(JUNIT_XSD_CACHE))


@contextlib.contextmanager
def private_vhost(prefix: str) -> Iterator[str]:
    """A RabbitMQ vhost of the test's own on the local server (guest may use it), deleted after."""
    import uuid

    name = f"{prefix}-{uuid.uuid4().hex[:8]}"
    subprocess.run(["rabbitmqctl", "add_vhost", name], check=True, capture_output=True, timeout=60)
    subprocess.run(
        ["rabbitmqctl", "set_permissions", "-p", name, "guest", ".*", ".*", ".*"],
        check=True, capture_output=True, timeout=60,
    )  # fmt: skip
    try:
        yield name
    finally:
        subprocess.run(["rabbitmqctl", "delete_vhost", name], capture_output=True, timeout=60)
