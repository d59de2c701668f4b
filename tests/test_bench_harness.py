"""The benchmark harness: CPU cost accounting, alternating rounds, pinning plan and verdict logic.

Pure logic in this process (no Locust, no servers): the benches themselves are ``just bench``.
"""

from __future__ import annotations

import time

import pytest

from bench import harness
from bench.harness import OK, UNRESOLVED, Comparison, Meter, Sample, Spread, Target, verdict

EXTRA_US = 20.0


def busy_wait(us: float) -> None:
    """Spend ``us`` µs of this thread's CPU time (not wall time: a preemption must not count)."""
    end = time.thread_time() + us / 1e6
    while time.thread_time() < end:
        pass


def workload(extra: bool, ops: int = 3000) -> Sample:
    """A base operation (some arithmetic), plus a 20 µs busy-wait per op on the candidate side."""
    meter = Meter().start()
    acc = 0
    for i in range(ops):
        for j in range(40):
            acc += i * j
        if extra:
            busy_wait(EXTRA_US)
    return meter.stop(ops)


def test_known_extra_cost_is_measured_within_15_percent() -> None:
    samples = harness.run_rounds(6, ["bare", "extra"], lambda v: workload(v == "extra"))
    comparison = Comparison(samples["bare"], samples["extra"])
    assert comparison.extra.n == 6
    assert EXTRA_US * 0.85 <= comparison.extra.median <= EXTRA_US * 1.15, comparison.extra
    # The base op costs a few µs, so the candidate costs several times as much: ratio well below 1.
    assert comparison.ratio.high < 0.5


def test_cost_is_cpu_not_wall_time() -> None:
    # Sleeping costs wall time but (almost) no CPU: the per-op cost must stay near zero.
    meter = Meter().start()
    time.sleep(0.05)
    sample = meter.stop(10)
    assert sample.wall_s >= 0.05
    assert sample.per_op < 2000  # under 20 ms of CPU for 50 ms asleep (generous for a busy machine)
    assert sample.cpu_share < 0.5


def test_rounds_alternate_abba() -> None:
    order: list[str] = []
    samples = harness.run_rounds(4, ["A", "B"], lambda v: order.append(v) or Sample(1, 1.0, 1.0))
    warmup, measured = order[:2], order[2:]  # one warm-up round, dropped
    assert warmup == ["A", "B"]
    assert measured == ["A", "B", "B", "A", "A", "B", "B", "A"]
    assert len(samples["A"]) == len(samples["B"]) == 4
    assert harness.alternating(2, ["a", "b", "c"]) == [["a", "b", "c"], ["c", "b", "a"]]


def test_comparison_pairs_rounds() -> None:
    base = [Sample(1000, 0.010, 1.0), Sample(1000, 0.011, 1.0), Sample(1000, 0.012, 1.0)]
    cand = [Sample(1000, 0.012, 1.0), Sample(1000, 0.012, 1.0), Sample(1000, 0.015, 1.0)]
    comp = Comparison(base, cand)
    assert comp.extra.low == pytest.approx(1.0)
    assert comp.extra.median == pytest.approx(2.0)
    assert comp.extra.high == pytest.approx(3.0)
    assert comp.ratio.median == pytest.approx(10 / 12)
    assert comp.ratio.high == pytest.approx(11 / 12)


@pytest.mark.parametrize(
    ("values", "target", "expected"),
    [
        ([0.91, 0.93, 0.95], Target(0.90), OK),
        ([0.85, 0.86, 0.89], Target(0.90), harness.BELOW),
        ([0.88, 0.92, 0.95], Target(0.90), UNRESOLVED),  # straddles: no verdict
        ([0.90, 0.92], Target(0.90), OK),  # reaching the target counts
        ([20.0, 30.0, 45.0], Target(50, at_least=False), OK),
        ([40.0, 55.0], Target(50, at_least=False), UNRESOLVED),
        ([51.0, 60.0], Target(50, at_least=False), harness.ABOVE),
    ],
)
def test_verdict_only_when_the_whole_interval_is_on_one_side(
    values: list[float], target: Target, expected: str
) -> None:
    assert verdict(Spread.of(values), target) == expected


def test_unresolved_when_measured_intervals_straddle() -> None:
    # Two variants whose per-round ratios fall on both sides of 0.90.
    base = [Sample(1000, 0.0090, 1.0), Sample(1000, 0.0095, 1.0), Sample(1000, 0.0090, 1.0)]
    cand = [Sample(1000, 0.0100, 1.0), Sample(1000, 0.0100, 1.0), Sample(1000, 0.0105, 1.0)]
    ratio = Comparison(base, cand).ratio
    assert ratio.low < 0.90 < ratio.high
    assert verdict(ratio, Target(0.90)) == UNRESOLVED
    assert "--rounds" in harness.verdict_text(ratio, Target(0.90), 5)


def test_spread_format() -> None:
    assert Spread.of([3.0, 1.0, 2.0]).format(".1f", " µs") == "2.0 µs (1.0–3.0)"
    with pytest.raises(ValueError):
        Spread.of([])


def test_pinning_plan() -> None:
    assert harness.plan_cores({0, 1}) == ({1}, {0})
    assert harness.plan_cores({0, 1, 2, 3}) == ({3}, {0, 1, 2})
    assert harness.plan_cores({0}) is None


def test_pin_and_restore_own_process() -> None:
    import os

    before = os.sched_getaffinity(0)
    pinning = harness.Pinning()
    pinning.pin_self()
    if pinning.generator is not None:
        assert os.sched_getaffinity(0) == pinning.generator
    pinning.restore()
    assert os.sched_getaffinity(0) == before
    assert pinning.lines


def test_rest_meter_names_another_busy_process_and_leaves_out_the_measured_ones() -> None:
    import subprocess
    import sys

    spin = "import time\nend = time.process_time() + 1.5\nwhile time.process_time() < end: pass\n"
    busy = subprocess.Popen([sys.executable, "-c", spin])
    measured = subprocess.Popen([sys.executable, "-c", spin])
    try:
        meter = harness.RestMeter([measured.pid]).start()
        time.sleep(1.0)
        rest = meter.stop()
    finally:
        for proc in (busy, measured):
            proc.wait(10)
    # The spinning process outside the window's own is named, with most of a core; the other is not.
    assert rest.others >= 0.4, rest
    assert any(f"[{busy.pid}]" in line for line in rest.busiest), rest
    assert not any(f"[{measured.pid}]" in line for line in rest.busiest), rest
    assert "rest of the machine" in rest.text()
