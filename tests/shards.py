"""Split the suite into shards that run as separate pytest processes side by side (``just test``).

Most of the suite's time is end-to-end runs that wait (a run's ``run_time``, a server starting),
so two processes finish it in a little more than half the time on two cores.  Not pytest-xdist:
its workers are execnet processes, and a test that imports Locust gevent-patches the process it
runs in, which stops an xdist worker talking to its controller.

A test *module* is the unit (its module fixtures run once); modules are dealt to shards by their
recorded duration (``tests/durations.json``, largest first, each to the emptiest shard).  The
container tests (marker ``docker``) share one Docker engine and one image build, so they all go to
shard 1, with the modules that read what they write (``BESIDE_THE_CONTAINER_TESTS``).
``--record-durations FILE`` writes each module's time (``FILE.I`` for shard I), to refresh the
record.  Side by side, each shard's runs get an exporter port of their own, and tests that load
the CPU on purpose keep out of the way of tests that measure it (``hogging_the_cpu``).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path

import pytest

DURATIONS = Path(__file__).with_name("durations.json")
UNKNOWN_S = 20.0  # a module not in the record yet
# The container parity tests write a profile into the checkout's profiles/ (compose mounts that
# directory); these modules list that directory, so they run in shard 1 too, never beside them.
BESIDE_THE_CONTAINER_TESTS = ("tests/test_k8s.py", "tests/test_k8s_netns.py", "tests/test_profiles.py")
# Each shard's runs export metrics on a port of their own (a run whose exporter cannot bind writes
# no metrics.prom): below the kernel's ephemeral range, so no client socket takes it meanwhile.
METRICS_PORT_BASE = 19646
CPU_LOCK = Path("/tmp/loadstack-tests/cpu.lock")


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("loadstack shards")
    group.addoption("--shard", default=None, help="run shard I of N of the test modules (I/N, e.g. 1/2)")
    group.addoption(
        "--record-durations", default=None, help="write each test module's seconds to this JSON file"
    )


def parse_shard(text: str) -> tuple[int, int]:
    try:
        index, count = (int(part) for part in text.split("/"))
    except ValueError:
        raise pytest.UsageError(f"--shard {text!r}: write I/N, e.g. 1/2") from None
    if not 1 <= index <= count:
        raise pytest.UsageError(f"--shard {text!r}: I must be between 1 and N")
    return index, count


def deal(modules: dict[str, bool], count: int, durations: dict[str, float]) -> dict[str, int]:
    """Shard (1-based) of each module; ``modules`` maps a module to whether it must be in shard 1."""
    load = [0.0] * count
    shard: dict[str, int] = {}
    for module, first in modules.items():
        if first:
            shard[module] = 1
            load[0] += durations.get(module, UNKNOWN_S)
    rest = sorted(
        (m for m, first in modules.items() if not first), key=lambda m: (-durations.get(m, UNKNOWN_S), m)
    )
    for module in rest:
        emptiest = min(range(count), key=lambda i: (load[i], i))
        shard[module] = emptiest + 1
        load[emptiest] += durations.get(module, UNKNOWN_S)
    return shard


def module_of(item: pytest.Item) -> str:
    return item.nodeid.split("::", 1)[0]


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    option = config.getoption("--shard")
    if not option:
        return
    index, count = parse_shard(option)
    modules: dict[str, bool] = {}
    for item in items:
        module = module_of(item)
        modules[module] = (
            modules.get(module, False)
            or item.get_closest_marker("docker") is not None
            or module in BESIDE_THE_CONTAINER_TESTS
        )
    durations = json.loads(DURATIONS.read_text()) if DURATIONS.exists() else {}
    shard = deal(modules, count, durations)
    keep = [item for item in items if shard[module_of(item)] == index]
    config.hook.pytest_deselected(items=[item for item in items if shard[module_of(item)] != index])
    items[:] = keep


class DurationRecorder:
    def __init__(self, path: Path) -> None:
        self.path = path
        self.seconds: dict[str, float] = defaultdict(float)

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        self.seconds[report.nodeid.split("::", 1)[0]] += report.duration

    def pytest_sessionfinish(self) -> None:
        self.path.write_text(
            json.dumps({m: round(s, 1) for m, s in sorted(self.seconds.items())}, indent=1) + "\n"
        )


def pytest_configure(config: pytest.Config) -> None:
    shard = config.getoption("--shard")
    index = parse_shard(shard)[0] if shard else 0
    if index:  # a test that needs a port of its own (it scrapes the run) still sets one
        os.environ["LOADSTACK_METRICS_PORT"] = str(METRICS_PORT_BASE + index)
    path = config.getoption("--record-durations")
    if path:
        if index:  # shards side by side: one file each, FILE.I
            path = f"{path}.{index}"
        config.pluginmanager.register(DurationRecorder(Path(path)), "loadstack-durations")


@contextlib.contextmanager
def _cpu_lock(mode: int) -> Iterator[None]:
    CPU_LOCK.parent.mkdir(parents=True, exist_ok=True)
    with CPU_LOCK.open("a") as fh:
        fcntl.flock(fh, mode)  # released when the file closes, however the block ends
        yield


def hogging_the_cpu() -> contextlib.AbstractContextManager[None]:
    """Held by a test that loads the CPU on purpose (spinning processes): no test of the other
    shard whose figures a neighbour's load would change runs meanwhile (``needing_a_calm_cpu``)."""
    return _cpu_lock(fcntl.LOCK_EX)


def needing_a_calm_cpu() -> contextlib.AbstractContextManager[None]:
    """Held by a test whose figures (a rate, a "not saturated" verdict) a spinning neighbour would
    change; such tests may run side by side, just not beside ``hogging_the_cpu``."""
    return _cpu_lock(fcntl.LOCK_SH)
