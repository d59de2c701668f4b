"""What the master keeps stays bounded over a long run (pure logic): per-second counts, chart
history, response-time copies, its own generator windows, and queue samples packed.

A soak of hours is simulated by feeding the structures second after second: what the master
keeps must stop growing, while what the reports read (the current RPS, a chart from the run's
first point to its last, the workload timeline) stays what it was.
"""

from __future__ import annotations

import itertools
import subprocess
import sys
from collections import defaultdict
from types import SimpleNamespace

import pytest

from loadstack.retention import (
    HISTORY_MAX_POINTS,
    PER_SECOND_KEPT_S,
    ChangePoints,
    PackedSamples,
    Retention,
    roll_up,
)


def entry() -> SimpleNamespace:
    return SimpleNamespace(
        num_reqs_per_sec=defaultdict(int),
        num_fail_per_sec=defaultdict(int),
        use_response_times_cache=False,
        response_times_cache=None,
    )


def test_per_second_counts_and_history_stay_bounded_over_ten_simulated_hours() -> None:
    names = [entry() for _ in range(20)]
    stats = SimpleNamespace(total=entry(), entries={i: e for i, e in enumerate(names)}, history=[])
    retention = Retention()
    t0 = 1_700_000_000
    sizes = []
    for second in range(t0, t0 + 10 * 3600):
        for e in (stats.total, *names):
            e.num_reqs_per_sec[second] += 3
            e.num_fail_per_sec[second] += 1
        if second % 5 == 0:
            stats.history.append({"time": second})
        if second % 10 == 0:
            retention.apply([stats], now=second)
            sizes.append((len(stats.total.num_reqs_per_sec), len(stats.history)))
    per_second, points = zip(*sizes, strict=True)
    assert max(per_second) <= PER_SECOND_KEPT_S + 10
    assert max(points) <= HISTORY_MAX_POINTS
    # The last 12 seconds (what Locust's current RPS reads) are all still there.
    last = t0 + 10 * 3600 - 1
    assert all(stats.total.num_reqs_per_sec[s] == 3 for s in range(last - 12, last + 1))
    # The chart still spans the whole run, in time order, with the newest points at full resolution.
    times = [p["time"] for p in stats.history]
    assert times[0] == t0 and times == sorted(times)
    assert times[-1] == last - last % 5
    recent = times[-HISTORY_MAX_POINTS // 2 :]
    assert all(b - a == 5 for a, b in itertools.pairwise(recent))


def test_roll_up_keeps_the_newest_half_and_every_other_older_point() -> None:
    points = list(range(10))
    roll_up(points, max_points=8)
    assert points == [0, 2, 4, 6, 7, 8, 9]
    short = list(range(8))
    roll_up(short, max_points=8)
    assert short == list(range(8))
    with pytest.raises(ValueError):
        roll_up(points, max_points=2)


def test_change_points_give_the_same_workload_timeline_with_few_keys() -> None:
    from loadstack.workload.runtime import timeline  # imports gevent: not at collection

    sampled = {}
    kept = ChangePoints()
    start = 1_700_000_000
    for s in range(start, start + 3600):
        users = 10 if s < start + 600 else (50 if s < start + 3000 else 20)
        sampled[s] = users
        kept.record(s, users)
    kept.record(start + 3599, 20)  # the same second sampled twice
    assert len(kept) <= 6
    full = timeline({}, sampled, start, lambda _: None)
    assert timeline({}, kept, start, lambda _: None) == full
    assert full[-1]["t"] == 3599


def test_real_locust_stats_keep_their_current_rps_once_trimmed() -> None:
    # In a subprocess: importing Locust gevent-patches the process.
    code = """
from locust.stats import RequestStats
from loadstack.retention import Retention
stats = RequestStats()
t0 = 1_700_000_000
stats.log_request("GET", "/a", 10, 0)
for s in range(t0, t0 + 3600):
    stats.total.num_reqs_per_sec[s] = 4
    stats.entries[("/a", "GET")].num_reqs_per_sec[s] = 4
stats.total.last_request_timestamp = t0 + 3599.5
stats.total.start_time = t0
before = stats.total.current_rps
dropped = Retention().apply([stats], now=t0 + 3600)
assert dropped > 3000, dropped
assert stats.total.current_rps == before == 4, (before, stats.total.current_rps)
assert len(stats.total.num_reqs_per_sec) <= 61
print("ok")
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0 and out.stdout.strip().endswith("ok"), out.stdout + out.stderr


def test_the_masters_own_generator_windows_are_added_up_not_queued() -> None:
    from loadstack.generator_health import MAX_PENDING_WINDOWS, GeneratorHealth  # imports gevent

    health = GeneratorHealth()
    health.role, health.since = "master", 1_700_000_000.0
    hours = 2 * MAX_PENDING_WINDOWS  # two hours of one-second windows, ten wake-ups each
    for second in range(hours):
        health.close_window([health.since + second, 1.0, 0.05, *([0.5] * 9), 3.0])
    assert len(health.pending) == 0  # it was a second's window more every second, up to an hour
    master = health.section()["processes"]["master"]
    assert master["measured_s"] == hours and master["wakeups"] == hours * 10  # the first hour too
    assert master["lag_ms"] == {"p50": 0.5, "p99": 3.0, "max": 3.0}
    worker = GeneratorHealth()
    worker.role = "worker"
    worker.close_window([1.0, 1.0, 0.05, 0.5])
    assert worker.drain() == [[1.0, 1.0, 0.05, 0.5]]  # a worker still ships its windows


def test_packed_queue_samples_give_back_the_same_rows() -> None:
    rows = [(1_700_000_000.0 + 2.001 * i, (i * 37) % 5000, 2) for i in range(900)]
    packed = PackedSamples()
    for row in rows:
        packed.append(*row)
    assert len(packed) == 900 and packed.rows() == rows
    from loadstack.inspect.rabbitmq import QueueSampler

    sampler = QueueSampler("amqp://guest:guest@127.0.0.1:5672//", ["q"])  # connects lazily
    depths = iter(rows)

    def declare(queue: str, passive: bool) -> SimpleNamespace:
        _, depth, consumers = next(depths)
        return SimpleNamespace(message_count=depth, consumer_count=consumers)

    channel = SimpleNamespace(queue_declare=declare, close=lambda: None)
    sampler.inspector = SimpleNamespace(  # type: ignore[assignment]  (no broker: a stand-in)
        heartbeat=lambda: None,
        connection=lambda: SimpleNamespace(channel=lambda: channel),
        close=lambda: None,
    )
    for _ in rows:
        sampler.sample_once()
    summary = sampler.summary()["q"]
    assert summary["error"] is None and len(summary["samples"]) == len(rows)
    assert [s[1:] for s in summary["samples"]] == [r[1:] for r in rows]
    assert summary["max_depth"] == max(r[1] for r in rows) and summary["last_depth"] == rows[-1][1]


def test_request_names_stop_copying_their_response_times_on_the_master() -> None:
    # In a subprocess: importing Locust gevent-patches the process.
    code = """
from locust.stats import RequestStats, StatsEntry
from loadstack.retention import Retention
master = RequestStats()  # as the master's: names get the cache when worker reports bring them
for name in ("/a", "/b"):
    master.entries[(name, "GET")] = StatsEntry(master, name, "GET", use_response_times_cache=True)
retention = Retention()
t0 = 1_700_000_000
sizes = []
for second in range(t0, t0 + 600):
    worker = RequestStats(use_response_times_cache=False)
    for name in ("/a", "/b"):
        e = worker.get(name, "GET")
        e.num_requests = 1
        e.response_times[(second - t0) % 300 + 1] = 1  # a new latency now and then
        e.last_request_timestamp = second + 0.5
        master.entries[(name, "GET")].extend(e)
        master.total.extend(e)
    if second % 10 == 0:
        retention.apply([master], now=second)
    caches = [e.response_times_cache for e in master.entries.values()]
    sizes.append(sum(len(c[k].response_times) for c in caches if c for k in c))
assert max(sizes[10:]) == 0, max(sizes[10:])
assert len(master.total.response_times_cache) == 20  # the total's current percentiles still work
print("ok")
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0 and out.stdout.strip().endswith("ok"), out.stdout + out.stderr
