"""``just bench users``: users per worker and memory per user.

The figures themselves (KB per user, the ceiling) are the bench's to print, on the machine it runs
on; here a small real run (200 users of each kind, one round, real servers and worker processes)
must print the per-level table, the per-worker table and the comparison with k6, and the pure
figures (slope, lag percentiles, ceiling) are checked on known inputs.
"""

from __future__ import annotations

import re
import subprocess
import sys

import pytest

from bench.users import ceiling, lag_figures, saturated, slope
from tests.helpers import ROOT


def test_a_quick_run_prints_memory_per_user_and_users_per_worker_for_every_kind() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "bench", "users", "--users", "200", "--rounds", "1", "--pacing", "1", "--settle", "0.5"],
        capture_output=True, text=True, timeout=600, cwd=ROOT,
    )  # fmt: skip
    assert out.returncode == 0, out.stdout + out.stderr
    text = out.stdout
    for column in ("RssAnon MiB", "lag p50 ms", "lag p99 ms", "lag max ms", "req/s (intended)", "CPU % core"):
        assert column in text, text
    assert "KB per user" in text and "ceiling per worker = per core" in text, text
    for kind in ("http", "http-gc", "websocket", "chain"):
        row = re.search(rf"^\s+{kind}\s+200\s+([\d.]+)\s", text, re.M)
        assert row and float(row.group(1)) > 0, text
        kb = re.search(rf"{kind}: KB per user \(RssAnon slope\): ([\d.]+) KB \(", text)
        assert kb and 0 < float(kb.group(1)) < 10_000, text
        assert re.search(rf"loadstack {kind} user .*\s0\.\d{{3}}\s+\d+x$", text, re.M), text
    assert "k6 v0.42.0, 2 vCPUs (grafana/k6-benchmarks)" in text and "0.79" in text, text
    assert "open-files limit" in text, text
    # The same HTTP users frozen (loadstack's default) and left under the collector, side by side.
    assert re.search(
        r"^\s+200\s+[\d.]+\s+[\d.]+\s+[\d.]+x$", text.split("left under the collector")[-1], re.M
    ), text


def test_slope_is_least_squares() -> None:
    assert slope([(1, 100.0), (1001, 20_100.0), (5001, 100_100.0)]) == pytest.approx(20.0)
    assert slope([(0, 5.0), (10, 5.0)]) == 0.0
    with pytest.raises(ValueError):
        slope([(3, 1.0), (3, 2.0)])


def test_lag_percentiles_are_nearest_rank() -> None:
    lags = [1.0] * 98 + [60.0, 200.0]
    assert lag_figures(lags) == {"lag_p50_ms": 1.0, "lag_p99_ms": 60.0, "lag_max_ms": 200.0}
    assert lag_figures([])["lag_p99_ms"] == float("inf")


def test_ceiling_is_the_highest_level_held_with_every_user_started() -> None:
    points = [
        {"users": 1000, "started": 1000, "lag_p99_ms": 3.0},
        {"users": 5000, "started": 5000, "lag_p99_ms": 40.0},
        {"users": 10000, "started": 10000, "lag_p99_ms": 75.0},
    ]
    assert ceiling(points, 50.0) == 5000
    points[1]["started"] = 4990  # a level some users never reached is not held
    assert ceiling(points, 50.0) == 1000
    assert ceiling(points[2:], 50.0) == 0


def test_a_lagging_but_idle_worker_is_not_saturated() -> None:
    assert saturated({"lag_p99_ms": 80.0, "cpu_share": 0.95}, 50.0)
    assert not saturated({"lag_p99_ms": 500.0, "cpu_share": 0.05}, 50.0)  # the neighbours' doing
    assert not saturated({"lag_p99_ms": 10.0, "cpu_share": 0.99}, 50.0)
