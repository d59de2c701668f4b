"""A worker that reads its first ``spawn`` before loadstack is installed still runs the workload.

A Locust worker says it is ready while it connects, before ``init``; a master that has all its
workers sends ``spawn`` at once, and a worker may read it before ``init`` fires: ``test_start``
then fires with none of loadstack's listeners, and that worker's users ran outside the workload
model (a 300-iteration budget on 3 workers once ended with 964 requests, in CI).

Here the timing is made certain, not waited for: the locustfile's own ``init`` listener, which
Locust calls before loadstack's, lets each worker read its spawn message and holds the spawning
until every ``init`` listener ran, as a fast master and a slow worker would.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from loadstack.processes import free_port
from tests.helpers import ROOT, summary, write_profile

pytestmark = pytest.mark.slow

EARLY_SPAWN = """
import gevent
import gevent.event
from locust import User, constant, events, task
from locust.runners import WorkerRunner

held = gevent.event.Event()


@events.init.add_listener
def read_the_spawn_before_loadstack(environment, runner, **_):
    if not isinstance(runner, WorkerRunner):
        return
    start = runner.start_worker

    def start_when_every_init_ran(*args, **kwargs):
        held.wait()
        start(*args, **kwargs)

    runner.start_worker = start_when_every_init_ran
    while runner.worker_state != "spawning":  # Locust fired test_start: loadstack missed it
        gevent.sleep(0.01)


import loadstack.users  # installs loadstack: its init listener comes after the one above


@events.init.add_listener
def every_init_ran(**_):
    held.set()


class Ticker(User):
    wait_time = constant(0.01)

    @task
    def tick(self):
        self.environment.events.request.fire(
            request_type="TICK", name="tick", response_time=1, response_length=0, exception=None, context={}
        )
"""


def test_a_worker_that_read_its_spawn_before_init_keeps_the_budget(tmp_path: Path) -> None:
    locustfile = tmp_path / "early_spawn.py"
    locustfile.write_text(EARLY_SPAWN)
    profile = write_profile(
        tmp_path / "early.yml", locustfile=str(locustfile), users=6, run_time="60s", iterations=200
    )
    env = {**os.environ, "LOCUST_METRICS_EXPORT": "0", "LOADSTACK_PROFILE": str(profile),
           "LOADSTACK_RESULTS_DIR": str(tmp_path)}  # fmt: skip
    port = free_port()
    master = [sys.executable, "-m", "locust", "-f", str(locustfile), "--master", "--master-bind-host", "127.0.0.1",
              "--master-bind-port", str(port), "--expect-workers", "2", "--headless", "-u", "6", "-r", "100",
              "-t", "60s"]  # fmt: skip
    worker = [sys.executable, "-m", "locust", "-f", str(locustfile), "--worker", "--master-port", str(port)]
    procs = [
        subprocess.Popen(
            cmd, env={**env, **extra}, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
        )
        for cmd, extra in ((master, {"LOADSTACK_RUN_ID": "early"}), (worker, {}), (worker, {}))
    ]
    try:
        out, _ = procs[0].communicate(timeout=300)
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
            proc.communicate(timeout=30)
    assert procs[0].returncode == 0, out[-4000:]
    doc = summary(tmp_path, "early")
    assert doc["end_reason"] == "iterations completed", out[-4000:]
    assert doc["workload"]["budgets"]["run"] == {"budget": 200, "completed": 200}
    assert doc["totals"]["count"] == 200  # one request per iteration, none outside the budget


def test_a_worker_stopped_before_it_joined_a_master_leaves_at_once_even_as_pid_1(tmp_path: Path) -> None:
    """A container's worker is PID 1: the kernel drops a signal PID 1 has no handler for, and Locust
    handles SIGTERM only once connected.  A worker pod deleted between two runs (no master yet)
    then lived out its grace period, joined the next run's master meanwhile and died in it."""
    port = free_port()  # nothing listens: the worker keeps trying to connect
    env = {**os.environ, "LOCUST_LOGLEVEL": "DEBUG", "LOCUST_METRICS_EXPORT": "0"}
    log = tmp_path / "worker.log"
    cmd = ["unshare", "--pid", "--fork", "--kill-child", sys.executable, "-m", "loadstack", "worker",
           "--profile", "smoke", "--master-host", "127.0.0.1", "--master-port", str(port)]  # fmt: skip
    with log.open("w") as out:
        proc = subprocess.Popen(cmd, env=env, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT, text=True)
    try:
        # Waiting for its master: Locust's first failed attempt (debug level, 5 s in).
        deadline = time.monotonic() + 120
        while "Failed to connect to master" not in log.read_text() and proc.poll() is None:
            assert time.monotonic() < deadline, log.read_text()[-3000:]
            time.sleep(0.2)
        assert proc.poll() is None, log.read_text()[-3000:]
        [worker] = Path(f"/proc/{proc.pid}/task/{proc.pid}/children").read_text().split()
        status = Path(f"/proc/{worker}/status").read_text()
        assert re.search(r"^NSpid:\s+\d+\s+1$", status, re.M), status  # PID 1 in its namespace
        os.kill(int(worker), signal.SIGTERM)
        # Unhandled, it would go on retrying for 5 minutes (60 attempts) before giving up.
        assert proc.wait(timeout=120) == 0, log.read_text()[-3000:]
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=30)
    assert "SIGTERM before joining a master; leaving" in log.read_text()
