"""The users' objects frozen once spawned (``loadstack.heap``), and thawed when users stop.

Real Locust throughout: a local runner in this process for what freezing does to the heap, and
``loadstack run`` with a worker for the plugin's wiring and its setting.
"""

from __future__ import annotations

import gc
import time
import weakref
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.helpers import loadstack, summary, write_profile

PROBE = """
import gc
from locust import User, constant, task
import loadstack.users  # noqa: F401  (loadstack's plugin, as every loadstack locustfile carries it)


class HeapProbe(User):
    wait_time = constant(0.2)

    @task
    def look(self):
        self.environment.events.request.fire(
            request_type="HEAP", name=f"frozen={gc.get_freeze_count() > 0}", response_time=0,
            response_length=0, exception=None, context={},
        )
"""


def _wait_for(predicate: Callable[[], bool], limit_s: float = 60.0) -> None:
    import gevent

    deadline = time.monotonic() + limit_s
    while not predicate():
        assert time.monotonic() < deadline, "the runner never got there"
        gevent.sleep(0.05)


def test_spawned_users_are_frozen_and_stopped_users_collected() -> None:
    import locust  # noqa: F401  (gevent's patching first)
    from locust import User, constant, task
    from locust.env import Environment

    from loadstack.heap import FrozenUsers

    seen: weakref.WeakSet[User] = weakref.WeakSet()

    class Idle(User):
        wait_time = constant(0.05)

        def on_start(self) -> None:
            seen.add(self)

        @task
        def nothing(self) -> None:
            self.cycle = self  # a reference cycle only the cyclic collector frees

    env = Environment(user_classes=[Idle])
    runner = env.create_local_runner()
    heap = FrozenUsers()
    heap.attach(env)
    gc.unfreeze()
    try:
        runner.start(40, spawn_rate=1000)
        _wait_for(lambda: heap.freezes == 1)
        assert gc.get_freeze_count() > 0 and heap.frozen_users == 40

        runner.start(39, spawn_rate=1000)  # a change under a tenth keeps the freeze
        _wait_for(lambda: runner.user_count == 39)
        assert heap.freezes == 1 and heap.frozen_users == 40

        runner.start(10, spawn_rate=1000)  # the stopped users' cycles are frozen: thawed, collected
        _wait_for(lambda: heap.freezes == 2)
        assert heap.frozen_users == 10 and gc.get_freeze_count() > 0

        runner.stop()
        _wait_for(lambda: heap.frozen_users == 0)
        assert gc.get_freeze_count() == 0
        gc.collect()
        assert len(seen) == 0, "stopped users, frozen while they ran, were not freed"
    finally:
        runner.quit()
        gc.unfreeze()


@pytest.mark.slow
@pytest.mark.parametrize("freeze", ["1", "0"])
def test_a_worker_freezes_its_users_unless_told_not_to(tmp_path: Path, freeze: str) -> None:
    locustfile = tmp_path / "heap_probe.py"
    locustfile.write_text(PROBE)
    profile = write_profile(tmp_path / "heap.yml", locustfile=str(locustfile), users=3, run_time="4s")
    run_id = f"heap-{freeze}"
    out = loadstack(
        "run", "--profile", str(profile), "--workers", "1", "--run-id", run_id, "--results-dir", str(tmp_path),
        env={"LOADSTACK_GC_FREEZE": freeze},
    )  # fmt: skip
    assert out.returncode == 0, out.stdout + out.stderr
    seen = {r["name"]: r["count"] for r in summary(tmp_path, run_id)["requests"] if r["type"] == "HEAP"}
    if freeze == "1":
        assert seen.get("frozen=True", 0) > 0, seen
    else:
        assert seen and "frozen=True" not in seen, seen
