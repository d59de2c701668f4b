"""Every request a worker made is in the summary, however late its last report leaves.

Locust's master quits by telling its workers to quit and giving their last stats reports half a
second.  A worker on a busy machine reports later, and the run's last seconds were missing from
``summary.json`` (a chain run counted 115 iterations where its workers had finished 141).  Here
each worker's test-stop takes 1.5 s, as on a loaded machine, and counts what it fired: the summary
must hold exactly that many requests.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.helpers import loadstack, summary, write_profile

pytestmark = pytest.mark.slow

TICKER = """
import os
from pathlib import Path

import gevent
from locust import User, constant, events, task
from locust.runners import WorkerRunner

fired = [0]


@events.request.add_listener
def count(**_):
    fired[0] += 1


@events.test_stop.add_listener
def slow_to_stop(environment, **_):
    if isinstance(environment.runner, WorkerRunner):
        gevent.sleep(1.5)  # a worker on a busy machine: its last report leaves late


@events.quitting.add_listener
def tell(environment, **_):
    if isinstance(environment.runner, WorkerRunner):
        Path(os.environ["FIRED_DIR"], f"{os.getpid()}.txt").write_text(str(fired[0]))


class Ticker(User):
    wait_time = constant(0.02)

    @task
    def tick(self):
        self.environment.events.request.fire(
            request_type="TICK", name="tick", response_time=1, response_length=0, exception=None, context={}
        )
"""


def test_a_late_final_report_still_reaches_the_summary(tmp_path: Path) -> None:
    locustfile = tmp_path / "ticker.py"
    locustfile.write_text(TICKER)
    fired = tmp_path / "fired"
    fired.mkdir()
    profile = write_profile(tmp_path / "ticker.yml", locustfile=str(locustfile), users=4, run_time="4s")
    out = loadstack(
        "run", "--profile", str(profile), "--workers", "2", "--run-id", "late-report",
        "--results-dir", str(tmp_path), env={"FIRED_DIR": str(fired)}, timeout=300,
    )  # fmt: skip
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    counts = [int(p.read_text()) for p in fired.glob("*.txt")]
    assert len(counts) == 2, counts
    total = summary(tmp_path, "late-report")["totals"]["count"]
    assert total == sum(counts) > 0, (total, counts)
