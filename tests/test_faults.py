"""Runs that survive their own processes dying (issue 27: findings 17-19, "What to build" 5).

Every test kills a real process of a real run with a real signal: a worker (its users move to the
remaining workers), the master (the launcher writes an incomplete summary and tears the seed data
down), the launcher while it starts up (SIGTERM is handled from its first line) and the launcher
itself (no process of the run outlives it).  Waits are readiness polls with generous limits.
"""

from __future__ import annotations

import contextlib
import csv
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import psycopg2
import pytest

from loadstack import exitcodes, stopping
from loadstack.data.teardown import remaining
from loadstack.processes import free_port
from loadstack_demo.process import demo_platform
from tests.helpers import (
    LOCUSTFILES,
    ROOT,
    assert_no_orphans,
    processes_with_env,
    start_loadstack,
    summary,
    write_profile,
)

pytestmark = pytest.mark.slow

PG_DSN = "postgresql://postgres@127.0.0.1:5432/test"
READY_S = 120  # generous: the machine is shared; these are limits, never expected durations


class Output:
    """A launcher's console, read in the background so the test can wait for a line."""

    def __init__(self, proc: subprocess.Popen[str]) -> None:
        self.proc = proc
        self.lines: list[str] = []
        self._changed = threading.Condition()
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            with self._changed:
                self.lines.append(line)
                self._changed.notify_all()
        with self._changed:
            self._changed.notify_all()

    def wait_for(self, predicate: Callable[[str], bool], after: int = 0, timeout: float = READY_S) -> int:
        """Index of the first line from ``after`` on that matches; fails on timeout or exit."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while True:
                for i in range(after, len(self.lines)):
                    if predicate(self.lines[i]):
                        return i
                left = deadline - time.monotonic()
                if left <= 0 or (self.proc.poll() is not None and not self._thread.is_alive()):
                    raise AssertionError("no such line; the console so far:\n" + self.text()[-4000:])
                self._changed.wait(min(left, 1.0))

    def finish(self, timeout: float = READY_S) -> int:
        code = self.proc.wait(timeout)
        self._thread.join(10)
        return code

    def text(self) -> str:
        return "".join(self.lines)


@contextlib.contextmanager
def launched(*args: str, env: dict[str, str] | None = None) -> Iterator[Output]:
    proc = start_loadstack(*args, env={"LOADSTACK_PROGRESS_INTERVAL": "1", **(env or {})})
    out = Output(proc)
    try:
        yield out
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(30)


# An existing platform (--host) declares where it stores the run's rows: teardown touches only those.
DEMO_TABLES = {"tables": ["demo_users", "demo_orders", "demo_payments"]}


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


def run_processes(run_id: str, role: str) -> list[int]:
    """PIDs of the run's Locust processes in ``role`` (``--master`` / ``--worker``)."""
    return [p for p in processes_with_env("LOADSTACK_RUN_ID", run_id) if f" {role} " in f"{_cmdline(p)} "]


def wait_for(
    predicate: Callable[[], bool], what: str, timeout: float = READY_S, every: float = 0.005
) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(every)


def _count(query: str, *args: object) -> int:
    with contextlib.closing(psycopg2.connect(PG_DSN)) as conn, conn.cursor() as cur:
        cur.execute(query, args)
        return int(cur.fetchone()[0])


def _progress(line: str, users: int, workers: int) -> bool:
    return f"users={users} " in line and line.rstrip().endswith(f"workers={workers}")


# -- finding 17: a killed worker's users move to the remaining workers ---------------------------------
def test_killed_worker_users_move_to_the_remaining_workers(tmp_path: Path) -> None:
    """5 users on 2 workers (3 + 2); one worker SIGKILLed: all 5 run on the other for the rest of the run."""
    profile = write_profile(
        tmp_path / "rebalance.yml",
        users=5,
        spawn_rate=10,
        run_time="40s",
        user_classes={"OscilloscopeUser": 1},
        wait_time={"min": 0.2, "max": 0.5},
        thresholds=[{"target": "total", "error_rate_max": 0.5}],
    )
    run_id = "faults-worker-killed"
    with launched(
        "run", "--profile", str(profile), "--workers", "2", "--run-id", run_id, "--results-dir", str(tmp_path)
    ) as out:
        ready = out.wait_for(lambda line: _progress(line, 5, 2))
        workers = run_processes(run_id, "--worker")
        assert len(workers) == 2, workers
        os.kill(workers[0], signal.SIGKILL)
        # Locust marks it missing (no heartbeat, a few seconds); its users then come back.
        out.wait_for(lambda line: _progress(line, 5, 1), after=ready + 1)
        code = out.finish()
    assert code == exitcodes.OK, out.text()[-4000:]
    doc = summary(tmp_path, run_id)
    health = doc["worker_health"]
    assert health["missing"] == 1 and health["rebalancing"] is True, health
    (event,) = health["events"]
    assert event["state"] == "missing" and event["users_lost"] >= 2, event
    assert event["users_back_at_s"] is not None and event["users_back_at_s"] >= event["at_s"], event
    with open(tmp_path / run_id / "results_stats_history.csv") as fh:
        users = [int(r["User Count"]) for r in csv.DictReader(fh) if r["Name"] == "Aggregated"]
    running = [u for u in users if u]  # the last rows are the run stopping
    assert running[-1] == 5 and running.count(5) > len(running) // 2, f"users over the run: {running}"
    assert "workers missing during the run: 1" in out.text()
    assert_no_orphans(run_id)


# -- finding 18: the master killed with SIGKILL ------------------------------------------------------------
def test_master_killed_writes_an_incomplete_summary_and_tears_down(tmp_path: Path) -> None:
    run_id = "faults-master-killed"
    profile = write_profile(
        tmp_path / "seeded.yml",
        locustfile=str(LOCUSTFILES / "http_users.py"),
        user_classes={"AuthUser": 1, "OrderUser": 1},
        wait_time={"min": 0.1, "max": 0.3},
        users=3,
        run_time="90s",
        seed={"customers": 20},
        teardown=DEMO_TABLES,
    )
    seeded_rows = "SELECT count(*) FROM demo_users WHERE run_id = %s"
    with demo_platform(store="backend") as url, launched(
        "run", "--profile", str(profile), "--host", url, "--workers", "2", "--run-id", run_id,
        "--results-dir", str(tmp_path),
    ) as out:  # fmt: skip
        out.wait_for(lambda line: "requests=" in line and "requests=0 " not in line)
        seeded = _count(seeded_rows, run_id)
        (master,) = run_processes(run_id, "--master")
        os.kill(master, signal.SIGKILL)
        code = out.finish()
    assert seeded >= 20, "the seed data was on the target while the run went on"
    assert code == 6 == exitcodes.MASTER_LOST, out.text()[-4000:]
    doc = summary(tmp_path, run_id)
    assert doc["run_id"] == run_id and doc["profile"] == "seeded"
    assert doc["incomplete"]["reason"] == "the Locust master was killed by SIGKILL", doc
    assert doc["incomplete"]["written_by"] == "launcher" and doc["incomplete"]["master_started"] is True
    assert doc["outcome"] == {"verdict": "incomplete", "exit_code": 6}
    assert doc["last_known"]["requests"] >= 0 and doc["start"] is not None
    assert "teardown" in doc and not doc["teardown"]["skipped"].get("postgres"), doc["teardown"]
    assert _count(seeded_rows, run_id) == 0, "teardown ran for the run id"
    assert remaining(run_id)["postgres"] == {}
    assert "incomplete summary" in out.text() and "exit status: 6" in out.text()
    assert_no_orphans(run_id)


# -- finding 19: SIGTERM while the launcher starts up ------------------------------------------------------
def _catches(pid: int, sig: int) -> bool:
    """``pid`` has a handler for ``sig`` (the kernel's SigCgt mask in /proc/PID/status)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return False
    caught = next((line.split()[1] for line in status.splitlines() if line.startswith("SigCgt:")), "0")
    return bool(int(caught, 16) >> (sig - 1) & 1)


def _children(pid: int) -> list[int]:
    try:
        return [int(c) for c in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        return []


def _checking(pid: int) -> bool:
    """The launcher is running its input checks (its ``loadstack check`` child exists)."""
    return any(_cmdline(child).rstrip().endswith("-m loadstack check") for child in _children(pid))


@pytest.mark.parametrize("when", ["handler-installed", "during-input-checks"])
def test_sigterm_while_the_launcher_starts_writes_a_summary(tmp_path: Path, when: str) -> None:
    """SIGTERM at the first moment the launcher can catch it, and while it checks its inputs.

    Before the fix the handler came after the input checks: a SIGTERM in the first seconds killed
    the launcher (exit 143, no summary), and one that came before the master started left no summary.
    """
    profile = write_profile(tmp_path / "early.yml", user_classes={"OscilloscopeUser": 1}, run_time="30s")
    run_id = f"faults-early-{when}"
    with launched(
        "run", "--profile", str(profile), "--workers", "1", "--run-id", run_id, "--results-dir", str(tmp_path)
    ) as out:
        pid = out.proc.pid
        if when == "handler-installed":
            wait_for(
                lambda: _catches(pid, signal.SIGTERM) or out.proc.poll() is not None, "a SIGTERM handler"
            )
        else:
            wait_for(lambda: _checking(pid) or out.proc.poll() is not None, "the input checks")
        out.proc.send_signal(signal.SIGTERM)
        code = out.finish()
    assert code == exitcodes.INTERRUPTED, out.text()[-4000:]
    doc = summary(tmp_path, run_id)
    assert doc["incomplete"]["reason"] == "SIGTERM before the Locust master started", doc
    assert doc["end_reason"] == "interrupted"
    assert doc["outcome"] == {"verdict": "incomplete", "exit_code": 130}
    assert not run_processes(run_id, "--master"), "no master was started after the signal"
    assert_no_orphans(run_id)


@pytest.mark.parametrize(
    ("argv", "launcher"),
    [
        (["loadstack", "run", "--profile", "p"], True),
        (["loadstack", "--allow-proxy", "http://127.0.0.1:3128", "run"], True),
        (["loadstack", "--allow-proxy=http://127.0.0.1:3128", "ui", "--foreground"], True),
        (["loadstack", "ui"], False),
        (["loadstack", "report", "run"], False),
        (["loadstack", "--allow-proxy", "http://127.0.0.1:3128"], False),
    ],
)
def test_the_handler_is_installed_for_every_launcher_command_line(argv: list[str], launcher: bool) -> None:
    """A global option before the subcommand (``--allow-proxy URL run``) is still a run: its
    SIGTERM in the first seconds is caught, and ``ui`` forwards only the subcommand's arguments."""
    assert stopping.is_launcher(argv) is launcher
    assert stopping.command_line(["loadstack", "--allow-proxy", "http://h:1", "ui", "--x"]) == ["ui", "--x"]


def test_sigterm_right_after_start_leaves_no_half_started_run(tmp_path: Path) -> None:
    """SIGTERM the moment the process exists: a summary and 130, or nothing at all.

    Only the interpreter's own start-up, before the first line of ``loadstack/__main__.py``, is
    outside any handler; a signal there ends the process before it started or wrote anything.
    """
    profile = write_profile(tmp_path / "instant.yml", user_classes={"OscilloscopeUser": 1}, run_time="30s")
    run_id = "faults-instant"
    with launched(
        "run", "--profile", str(profile), "--workers", "1", "--run-id", run_id, "--results-dir", str(tmp_path)
    ) as out:
        out.proc.send_signal(signal.SIGTERM)
        code = out.finish()
    if code == -signal.SIGTERM:
        assert not (tmp_path / run_id).exists()
    else:
        assert code == exitcodes.INTERRUPTED, out.text()[-4000:]
        assert summary(tmp_path, run_id)["incomplete"]["reason"] == "SIGTERM before the Locust master started"
    assert_no_orphans(run_id)


# -- finding 19, the master: SIGTERM before Locust's own handler ------------------------------------------
def _plain_master(profile: Path, tmp_path: Path, run_id: str, url: str, port: int, *extra: str) -> list[str]:
    return [sys.executable, "-m", "locust", "-f", str(LOCUSTFILES / "http_users.py"), "--master",
            "--master-bind-host", "127.0.0.1", "--master-bind-port", str(port), "--headless",
            "-H", url, *extra]  # fmt: skip


def _plain_env(profile: Path, tmp_path: Path, run_id: str) -> dict[str, str]:
    return {**os.environ, "LOCUST_METRICS_EXPORT": "0", "LOADSTACK_PROFILE": str(profile),
            "LOADSTACK_RESULTS_DIR": str(tmp_path), "LOADSTACK_RUN_ID": run_id,
            "LOADSTACK_PROGRESS_INTERVAL": "1"}  # fmt: skip


def test_master_sigterm_while_waiting_for_workers_writes_summary_and_tears_down(tmp_path: Path) -> None:
    """A plain Locust master, seeded, waiting for a worker that never comes, gets SIGTERM.

    Locust installs its SIGTERM handler only after the wait for workers: the master died (-15)
    with no summary, and the seed rows stayed on the target.
    """
    run_id = "faults-master-waiting"
    profile = write_profile(
        tmp_path / "waiting.yml", locustfile=str(LOCUSTFILES / "http_users.py"),
        user_classes={"AuthUser": 1}, seed={"customers": 10}, teardown=DEMO_TABLES, run_time="30s",
    )  # fmt: skip
    seeded_rows = "SELECT count(*) FROM demo_users WHERE run_id = %s"
    with demo_platform(store="backend") as url:
        cmd = _plain_master(profile, tmp_path, run_id, url, free_port(), "--expect-workers", "1", "-t", "30s")
        proc = subprocess.Popen(cmd, env=_plain_env(profile, tmp_path, run_id), cwd=ROOT,
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)  # fmt: skip
        out = Output(proc)
        try:
            out.wait_for(lambda line: "Waiting for workers to be ready" in line)
            seeded = _count(seeded_rows, run_id)
            proc.send_signal(signal.SIGTERM)
            code = out.finish()
        finally:
            if proc.poll() is None:
                proc.kill()
    assert seeded == 10, out.text()[-3000:]
    assert code == exitcodes.INTERRUPTED, out.text()[-3000:]
    doc = summary(tmp_path, run_id)
    assert doc["end_reason"] == "interrupted" and doc["outcome"]["exit_code"] == 130
    assert doc["totals"]["count"] == 0
    assert _count(seeded_rows, run_id) == 0, "teardown ran"


def test_master_sigterm_during_a_shaped_run_writes_one_summary(tmp_path: Path) -> None:
    """A shaped (stages) plain Locust run: Locust's SIGTERM handler comes only after the shape ends."""
    run_id = "faults-master-shaped"
    profile = write_profile(
        tmp_path / "staged.yml", locustfile=str(LOCUSTFILES / "http_users.py"),
        user_classes={"AuthUser": 1}, wait_time={"min": 0.2, "max": 0.5}, users=2, run_time="120s",
        stages=[{"duration": "60s", "users": 2, "spawn_rate": 10}, {"duration": "60s", "users": 1, "spawn_rate": 10}],
    )  # fmt: skip
    port = free_port()
    env = _plain_env(profile, tmp_path, run_id)
    worker = [sys.executable, "-m", "locust", "-f", str(LOCUSTFILES / "http_users.py"), "--worker",
              "--master-port", str(port)]  # fmt: skip
    with demo_platform() as url:
        master = subprocess.Popen(
            _plain_master(profile, tmp_path, run_id, url, port, "--expect-workers", "1"), env=env, cwd=ROOT,
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        )  # fmt: skip
        helper = subprocess.Popen(
            worker, env=env, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT
        )
        out = Output(master)
        try:
            out.wait_for(lambda line: "requests=" in line and "requests=0 " not in line)
            master.send_signal(signal.SIGTERM)
            code = out.finish()
        finally:
            for proc in (master, helper):
                if proc.poll() is None:
                    proc.kill()
                proc.wait(30)
    assert code == exitcodes.INTERRUPTED, out.text()[-3000:]
    doc = summary(tmp_path, run_id)
    assert doc["end_reason"] == "interrupted" and doc["totals"]["count"] > 0
    history = (tmp_path / "history.jsonl").read_text().splitlines()
    assert len(history) == 1, "one summary, however many SIGTERM handlers ran"


# -- "What to build" 5: a killed launcher leaves no orphan processes ----------------------------------------
def test_killed_launcher_leaves_no_orphans(tmp_path: Path) -> None:
    """SIGKILL the launcher mid-run: the demo platform, the master and the workers all end."""
    profile = write_profile(
        tmp_path / "orphans.yml", users=4, run_time="120s", user_classes={"OscilloscopeUser": 1},
        wait_time={"min": 0.2, "max": 0.5},
    )  # fmt: skip
    run_id = "faults-launcher-killed"
    with launched(
        "run", "--profile", str(profile), "--workers", "2", "--run-id", run_id, "--results-dir", str(tmp_path)
    ) as out:
        out.wait_for(lambda line: "requests=" in line and "requests=0 " not in line)
        children = processes_with_env("LOADSTACK_RUN_ID", run_id)
        roles = " | ".join(_cmdline(p) for p in children)
        assert "--master" in roles and roles.count("--worker") == 2 and "demo serve" in roles, roles
        out.proc.kill()
        out.finish()
        assert_no_orphans(run_id, wait=READY_S)


def test_launcher_killed_during_its_input_checks_leaves_no_orphan(tmp_path: Path) -> None:
    """The ``loadstack check`` child ends with the launcher (it used to run on to its own end).

    The profile's locustfile takes 10 minutes to import, so the check outlives any wait here
    unless the launcher's death ends it.
    """
    slow = tmp_path / "slow_import.py"
    slow.write_text("import time\n\ntime.sleep(600)\n")
    profile = write_profile(tmp_path / "slowcheck.yml", locustfile=str(slow), run_time="10s")
    run_id = "faults-killed-checking"
    with launched(
        "run", "--profile", str(profile), "--run-id", run_id, "--results-dir", str(tmp_path)
    ) as out:
        pid = out.proc.pid
        wait_for(lambda: _checking(pid) or out.proc.poll() is not None, "the input checks")
        (check,) = [c for c in _children(pid) if _cmdline(c).rstrip().endswith("-m loadstack check")]
        try:
            out.proc.kill()
            out.finish()
            wait_for(lambda: not _running(check), "the check to end with the launcher", every=0.2)
        finally:
            with contextlib.suppress(ProcessLookupError):
                os.kill(check, signal.SIGKILL)


def _running(pid: int) -> bool:
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return False
    return "State:\tZ" not in status
