"""compare judges a p95 rise against the noise the two runs themselves show (pure logic, no runs).

The real runs are in tests/test_gates_reports.py; these pin the rule on summaries built here.
"""

from __future__ import annotations

from typing import Any

from loadstack.report import compare
from loadstack.window_spread import MAX_WINDOWS, MIN_WINDOWS, WindowSpread


def _row(histogram: dict[int, int]) -> dict[str, Any]:
    count = sum(histogram.values())
    ordered = sorted(histogram)
    p95 = compare.percentile({str(k): v for k, v in histogram.items()}, count, 0.95)
    return {
        "type": "GET", "name": "/x", "count": count, "failures": 0, "failure_rate": 0.0, "rps": 10.0,
        "p50_ms": ordered[len(ordered) // 2], "p95_ms": p95, "p99_ms": ordered[-1],
        "histogram": {str(k): v for k, v in histogram.items()},
    }  # fmt: skip


def _summary(run_id: str, histogram: dict[int, int], spread: tuple[float, float] | None) -> dict[str, Any]:
    doc: dict[str, Any] = {"run_id": run_id, "requests": [_row(histogram)]}
    if spread is not None:
        doc["window_p95"] = [
            {"type": "GET", "name": "/x", "windows": 12, "q10_ms": spread[0], "q50_ms": spread[0],
             "q90_ms": spread[1]}
        ]  # fmt: skip
    return doc


# p95 10 ms → 20 ms on 1,000 requests a side: the per-request bootstrap is sure of it.
BASE = {5: 900, 10: 60, 12: 40}
SLOWER = {5: 880, 20: 80, 22: 40}


def test_a_rise_inside_the_runs_own_window_spread_is_not_a_regression() -> None:
    result = compare.compare(_summary("a", BASE, (5, 30)), _summary("b", SLOWER, (5, 25)))
    endpoint = result.endpoints[0]
    assert endpoint.p95_ci_ms is not None and endpoint.p95_ci_ms[0] > 0, "the bootstrap alone would call it"
    assert not result.regressions
    assert endpoint.p95_noise_ms == 25 and "within the 25 ms" in endpoint.within_noise
    assert "within the runs' own noise" in compare.format_table(result)


def test_a_rise_beyond_the_runs_own_window_spread_is_a_regression() -> None:
    result = compare.compare(_summary("a", BASE, (5, 7)), _summary("b", SLOWER, (5, 8)))
    assert [e.name for e in result.regressions] == ["/x"]
    assert "beyond the runs' 3 ms window spread" in result.regressions[0].reasons[0]


def test_a_point_estimate_beyond_the_spread_is_not_enough() -> None:
    # 400 requests a side: p95 12 → 20 ms (+8 ms) against a 7 ms window spread, but the
    # difference's interval starts at +4 ms, so the rise is not surely beyond the noise.
    base, slower = {5: 360, 10: 12, 12: 12, 14: 8, 16: 8}, {5: 360, 16: 12, 20: 12, 26: 8, 30: 8}
    result = compare.compare(_summary("a", base, (5, 12)), _summary("b", slower, (5, 12)))
    endpoint = result.endpoints[0]
    assert endpoint.p95_ci_ms is not None and 0 < endpoint.p95_ci_ms[0] <= 7
    assert endpoint.current["p95_ms"] - endpoint.baseline["p95_ms"] > 7
    assert not result.regressions and "within the 7 ms" in endpoint.within_noise


def test_without_window_figures_the_bootstrap_judges_alone() -> None:
    result = compare.compare(_summary("a", BASE, None), _summary("b", SLOWER, (5, 30)))
    assert result.endpoints[0].p95_noise_ms is None
    assert [e.name for e in result.regressions] == ["/x"]
    off = compare.compare(
        _summary("a", BASE, (5, 30)), _summary("b", SLOWER, (5, 30)), compare.Settings(window_noise=False)
    )
    assert off.regressions


def _report(**p95_by_name: list[int]) -> dict[str, Any]:
    """A worker's stats report as the master receives it: per request name, a histogram per window."""
    return {
        "stats": [
            {"method": "GET", "name": n, "response_times": {ms: 1 for ms in v}}
            for n, v in p95_by_name.items()
        ]
    }


def test_window_spread_takes_each_reports_p95_and_resets_with_the_stats() -> None:
    spread = WindowSpread()
    for slow in (10, 20, 30, 40, 50):
        spread.receive("w1", _report(**{"/a": [1] * 19 + [slow], "/b": []}))
    rows = {r["name"]: r for r in spread.section() or []}
    assert set(rows) == {"/a"}, "a window without requests of a name adds nothing for it"
    assert rows["/a"]["windows"] == 5 and rows["/a"]["q50_ms"] == 30
    assert rows["/a"]["q10_ms"] == 14 and rows["/a"]["q90_ms"] == 46
    assert compare.noise_ms({"window_p95": list(rows.values())}, "GET", "/a") == 32
    spread.reset()
    assert spread.section() is None
    for _ in range(MIN_WINDOWS - 1):
        spread.receive("w1", _report(**{"/a": [1, 2]}))
    assert compare.noise_ms({"window_p95": spread.section()}, "GET", "/a") is None, "too few windows"


def test_window_spread_stays_bounded_over_a_long_run() -> None:
    spread = WindowSpread()
    for i in range(3 * MAX_WINDOWS):
        spread.receive("w1", _report(**{"/a": [i % 50 + 1]}))
    assert len(spread.p95s[("GET", "/a")]) <= MAX_WINDOWS
    row = (spread.section() or [])[0]
    assert 1 <= row["q10_ms"] < row["q90_ms"] <= 50
