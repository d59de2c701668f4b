"""Generator health: did a run measure the system under test, or the load generator?

A Locust process times each request on its own gevent loop.  When that loop is late (its
process is out of CPU, or another process holds the core), every response time it records
includes the wait, and a comparison of two runs compares two machines' loads instead of two
builds.  Locust itself only logs a warning above 90 % CPU.

So every Locust process (master, each worker, a local runner) runs one greenlet that asks to
wake every :data:`WAKE_INTERVAL_S` and records how late it woke (the *loop lag*), and closes a
*window* about once a second with its CPU share (process CPU time over wall time, 1.0 = one
core busy) and the lag of each wake-up in it.  Workers ship their windows to the master on
Locust's report channel (:class:`loadstack.aggregation.Aggregator`); the master keeps, per
process, a bounded histogram and a few sums, counting only windows that start in the measured
time (after the warm-up, before the test stops).

A window is *saturated* when its CPU share exceeds :data:`CPU_LIMIT` or the p99 of its lags
exceeds :data:`LAG_P99_LIMIT_MS`; windows are weighted by their length, so a process that did
not wake at all for three seconds counts three saturated seconds.  A run is
``generator_saturated`` when some process that sends requests (a worker, or a local runner)
was saturated for more than :data:`SATURATED_SHARE` of its measured time and at least
:data:`MIN_SATURATED_S`.  The master's own
figures are recorded, not judged: it times no request.  docs/results.md ("generator").
"""

from __future__ import annotations

import logging
import math
import time
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, ClassVar

import gevent
from locust.env import Environment

from loadstack.aggregation import Aggregator

log = logging.getLogger("loadstack")

WAKE_INTERVAL_S = 0.1
WINDOW_S = 1.0
# Thresholds (docs/results.md): far above what a busy 2-core CI machine shows for an ordinary
# run (tens of ms at worst, in a few seconds), well below a starved worker (seconds).
CPU_LIMIT = 0.90
LAG_P99_LIMIT_MS = 100.0
SATURATED_SHARE = 0.25
# ... and at least this long: one hiccup (a garbage collection, a short run's first second of
# imports and connects) is not a saturated generator.
MIN_SATURATED_S = 2.0
# Windows a worker keeps while no master collects them (an hour).
MAX_PENDING_WINDOWS = 3600
BOTTLENECK = "inconclusive: the generator was the bottleneck"


def lag_bucket(ms: float) -> float:
    """Two significant digits, like Locust's response times: a bounded histogram, exact enough."""
    if ms < 10:
        return round(ms, 1)
    if ms < 100:
        return float(round(ms))
    digits = 10 ** (int(math.log10(ms)) - 1)
    return float(round(ms / digits) * digits)


def percentile(histogram: dict[float, int], q: float) -> float:
    """Nearest-rank percentile of a ``{value: count}`` histogram (0 when empty)."""
    total = sum(histogram.values())
    if not total:
        return 0.0
    rank = max(1, math.ceil(q * total))
    seen = 0
    for value in sorted(histogram):
        seen += histogram[value]
        if seen >= rank:
            return value
    return max(histogram)


def lag_figures(histogram: dict[float, int], max_ms: float) -> dict[str, float]:
    """p50, p99 and max lag in ms; a percentile's bucket never reads above the exact maximum."""
    top = round(max_ms, 1)
    return {
        "p50": min(percentile(histogram, 0.50), top),
        "p99": min(percentile(histogram, 0.99), top),
        "max": top,
    }


@dataclass
class ProcessHealth:
    """One process's measured windows, added up (bounded: a histogram and sums)."""

    role: str
    lags: dict[float, int] = field(default_factory=dict)
    measured_s: float = 0.0
    saturated_s: float = 0.0
    cpu_s: float = 0.0
    cpu_max: float = 0.0
    lag_max_ms: float = 0.0
    cpu_saturated_s: float = 0.0
    lag_saturated_s: float = 0.0

    def add(self, duration: float, cpu: float, lags: list[float]) -> None:
        for lag in lags:
            key = lag_bucket(lag)
            self.lags[key] = self.lags.get(key, 0) + 1
        self.measured_s += duration
        self.cpu_s += cpu * duration
        self.cpu_max = max(self.cpu_max, cpu)
        self.lag_max_ms = max([self.lag_max_ms, *lags])
        busy, late = window_saturation(cpu, lags)
        if busy:
            self.cpu_saturated_s += duration
        if late:
            self.lag_saturated_s += duration
        if busy or late:
            self.saturated_s += duration

    @property
    def saturated_share(self) -> float:
        return self.saturated_s / self.measured_s if self.measured_s else 0.0

    def as_dict(self) -> dict[str, Any]:
        return {
            "role": self.role,
            "measured_s": round(self.measured_s, 3),
            "wakeups": sum(self.lags.values()),
            "lag_ms": lag_figures(self.lags, self.lag_max_ms),
            "cpu_share": round(self.cpu_s / self.measured_s, 3) if self.measured_s else 0.0,
            "cpu_share_max": round(self.cpu_max, 3),
            "saturated_share": round(self.saturated_share, 3),
            "saturated_s": {"cpu": round(self.cpu_saturated_s, 3), "lag": round(self.lag_saturated_s, 3)},
            "saturated": self.saturated,
        }

    @property
    def saturated(self) -> bool:
        if self.role == "master":
            return False
        return self.saturated_share > SATURATED_SHARE and self.saturated_s >= MIN_SATURATED_S


def window_saturation(cpu: float, lags: list[float]) -> tuple[bool, bool]:
    """(CPU above its limit, lag p99 above its limit) for one window."""
    ordered = sorted(lags)
    p99 = ordered[max(0, math.ceil(0.99 * len(ordered)) - 1)] if ordered else 0.0
    return cpu > CPU_LIMIT, p99 > LAG_P99_LIMIT_MS


class GeneratorHealth(Aggregator):
    """Loop-lag and CPU sampling in every process; the master's per-process view of the run."""

    report_key: ClassVar[str] = "loadstack_generator"
    observes_requests: ClassVar[bool] = False

    def __init__(self) -> None:
        self.pending: deque[list[float | list[float]]] = deque(maxlen=MAX_PENDING_WINDOWS)
        self.processes: dict[str, ProcessHealth] = {}
        # The last window of each process, measured or not: what the exporter shows live.
        self.latest: dict[str, tuple[float, float]] = {}
        self.since: float | None = None  # windows count from here (test start, end of warm-up)
        self.until: float | None = None  # ... until the test stops
        self._sampler: gevent.Greenlet | None = None
        self.on_saturation = "fail"  # LOADSTACK_GENERATOR_SATURATED: "warn" keeps the exit status

    def attach(self, environment: Environment, role: str) -> None:
        """Sample in this process; on the master (or a local runner) follow the measured time."""
        super().attach(environment, role)
        ev = environment.events
        if role != "worker":
            ev.test_start.add_listener(self._on_test_start)
            ev.reset_stats.add_listener(self._on_reset)
            ev.test_stop.add_listener(self._on_test_stop)
        ev.quit.add_listener(lambda **_: self.stop())
        self._sampler = gevent.spawn(self._sample)

    def stop(self) -> None:
        if self._sampler is not None:
            self._sampler.kill(block=False)
            self._sampler = None

    # -- sampling (every process) ------------------------------------------------------------
    def _sample(self) -> None:
        """Wake every 100 ms; about once a second, close a window: [start, seconds, CPU share, *lags]."""
        start_wall, start, cpu0 = time.time(), time.perf_counter(), time.process_time()
        lags: list[float] = []
        while True:
            asked = time.perf_counter()
            gevent.sleep(WAKE_INTERVAL_S)
            now = time.perf_counter()
            lags.append(round(max(0.0, now - asked - WAKE_INTERVAL_S) * 1000, 2))
            if now - start >= WINDOW_S:
                cpu = time.process_time()
                self.close_window([start_wall, now - start, (cpu - cpu0) / (now - start), *lags])
                start_wall, start, cpu0, lags = time.time(), now, cpu, []

    def close_window(self, window: list[float | list[float]]) -> None:
        """A window just closed: a worker queues it for its next report; the master (or a local
        runner) adds it up at once.

        The master has no report to send, so its own windows used to wait in :attr:`pending` until
        the test stopped: a list of a dozen floats every second, 0.03 MiB a minute of a soak's
        growth, and past an hour the deque dropped the run's first windows from the master's
        figures.  Added up at once they cost a histogram bucket at most."""
        if self.role in ("master", "local"):
            self.merge({self.role: [window]})
        else:
            self.pending.append(window)

    # -- measured time (master, local runner) -----------------------------------------------
    def _on_test_start(self, **_: Any) -> None:
        if self.since is None:  # a web UI restart keeps counting from the first start
            self._on_reset()
        self.until = None

    def _on_reset(self, **_: Any) -> None:
        self.sync()  # what came before belongs to the warm-up
        self.since = time.time()
        self.processes.clear()

    def _on_test_stop(self, **_: Any) -> None:
        self.sync()
        self.until = time.time()

    # -- aggregation -------------------------------------------------------------------------
    def drain(self) -> list[list[float | list[float]]]:
        windows = list(self.pending)
        self.pending.clear()
        return windows

    def merge(self, payload: dict[str, list[list[Any]]]) -> None:
        """``{process: windows}``; only windows that start in the measured time are counted."""
        for process, windows in payload.items():
            for window in windows:
                try:
                    started, duration, cpu = (float(x) for x in window[:3])
                    lags = [float(x) for x in window[3:]]
                except (TypeError, ValueError):
                    continue  # not a window this version wrote
                p99 = sorted(lags)[max(0, math.ceil(0.99 * len(lags)) - 1)] if lags else 0.0
                self.latest[process] = (p99, cpu)
                if self.since is None or started < self.since:
                    continue
                if self.until is not None and started >= self.until:
                    continue
                role = "master" if process == "master" else ("local" if process == "local" else "worker")
                self.processes.setdefault(process, ProcessHealth(role)).add(duration, cpu, lags)

    def sync(self) -> None:
        if self.role in ("master", "local"):
            self.merge({self.role: self.drain()})

    def _receive(self, client_id: str, data: dict[str, Any]) -> None:
        windows = data.get(self.report_key)
        if isinstance(windows, list) and windows:
            self.merge({f"worker {client_id}": windows})

    # -- results -----------------------------------------------------------------------------
    def section(self) -> dict[str, Any]:
        """The ``generator`` block of summary.json (docs/results.md)."""
        self.sync()
        processes = {name: p.as_dict() for name, p in sorted(self.processes.items())}
        senders = [p for p in self.processes.values() if p.role != "master"]
        overall = ProcessHealth("overall")
        for p in senders:
            for lag, count in p.lags.items():
                overall.lags[lag] = overall.lags.get(lag, 0) + count
        saturated = sorted(name for name, p in processes.items() if p["saturated"])
        block: dict[str, Any] = {
            "saturated": bool(saturated),
            "on_saturation": self.on_saturation,
            "thresholds": {
                "cpu_share": CPU_LIMIT,
                "lag_p99_ms": LAG_P99_LIMIT_MS,
                "saturated_share": SATURATED_SHARE,
                "saturated_s_min": MIN_SATURATED_S,
                "wake_interval_ms": WAKE_INTERVAL_S * 1000,
            },
            "overall": {
                "lag_ms": lag_figures(overall.lags, max((p.lag_max_ms for p in senders), default=0.0)),
                "cpu_share": round(sum(p.cpu_s for p in senders) / sum(p.measured_s for p in senders), 3)
                if any(p.measured_s for p in senders)
                else 0.0,
                "cpu_share_max": round(max((p.cpu_max for p in senders), default=0.0), 3),
                "saturated_share": round(max((p.saturated_share for p in senders), default=0.0), 3),
            },
            "processes": processes,
            "saturated_processes": saturated,
        }
        if saturated:
            block["reason"] = "; ".join(reason(name, processes[name]) for name in saturated)
        return block


def reason(name: str, figures: dict[str, Any]) -> str:
    """Why one process counts as saturated, in words."""
    why = []
    if figures["saturated_s"]["cpu"]:
        why.append(f"CPU above {CPU_LIMIT:.0%} of a core for {figures['saturated_s']['cpu']:.1f} s")
    if figures["saturated_s"]["lag"]:
        why.append(f"loop lag p99 above {LAG_P99_LIMIT_MS:g} ms for {figures['saturated_s']['lag']:.1f} s")
    return (
        f"{name}: {' and '.join(why)} of {figures['measured_s']:.1f} s measured"
        f" ({figures['saturated_share']:.0%}; lag p99 {figures['lag_ms']['p99']:g} ms,"
        f" max {figures['lag_ms']['max']:g} ms, CPU {figures['cpu_share']:.0%})"
    )


def saturated(summary: dict[str, Any]) -> bool:
    """Whether a summary's run was marked ``generator_saturated``."""
    return bool((summary.get("generator") or {}).get("saturated"))


def report_line(summary: dict[str, Any]) -> str | None:
    """The console's plain-words line about the generator (None when there is nothing to say)."""
    block = summary.get("generator")
    if not block:
        return None
    overall = block["overall"]
    if block["saturated"]:
        return (
            "GENERATOR SATURATED: the load generator, not the system under test, was the bottleneck;"
            " latency figures include the generator's own delays and compare will not judge this run. "
            + block.get("reason", "")
            + (
                " (LOADSTACK_GENERATOR_SATURATED=warn: not the exit status)"
                if block.get("on_saturation") == "warn"
                else ""
            )
        )
    return (
        f"generator healthy: loop lag p50 {overall['lag_ms']['p50']:g} ms, p99 {overall['lag_ms']['p99']:g} ms,"
        f" max {overall['lag_ms']['max']:g} ms; CPU {overall['cpu_share']:.0%} of a core"
        f" (peak {overall['cpu_share_max']:.0%})"
    )


class Exporter:
    """``/metrics``: each process's loop lag and CPU share, from its latest window (a collector)."""

    def __init__(self, health: GeneratorHealth, run_id: str, profile: str) -> None:
        self.health = health
        self.run = [run_id, profile]

    def collect(self) -> Iterator[Any]:
        from prometheus_client.core import GaugeMetricFamily

        labels = ["run_id", "profile", "process"]
        lag = GaugeMetricFamily(
            "loadstack_generator_loop_lag_seconds",
            "How late the process's event loop woke (p99 of its latest second of 100 ms wake-ups)",
            labels=labels,
        )
        cpu = GaugeMetricFamily(
            "loadstack_generator_cpu_share",
            "CPU time the process used over its latest second (1 = one core)",
            labels=labels,
        )
        self.health.sync()
        for process, (lag_ms, share) in sorted(self.health.latest.items()):
            lag.add_metric([*self.run, process], lag_ms / 1000)
            cpu.add_metric([*self.run, process], share)
        yield lag
        yield cpu
