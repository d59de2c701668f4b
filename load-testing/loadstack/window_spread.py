"""How much each request name's p95 moves from one report window to the next: a run's own noise.

``compare`` needs to know what a difference between two runs of the same build looks
like.  On a busy machine, the rest of the machine's load comes and goes in bursts, so
slow requests cluster in time.  A bootstrap that resamples single requests treats them
as independent and calls a +60..150 % p95 move between two runs of the same build
significant.  The runs themselves show how much their p95 moves when nothing but the
machine changes: the p95 of each few-second window varies with the load beside it.

Workers send Locust's stats to the master every few seconds (``worker_report``: what
each request name did since the last report).  The master takes each such window's
p95 per request name.  That costs nothing on the workers and keeps no histogram.  The
summary keeps, per request name, the 10th, 50th and 90th percentile of those window
p95s (``window_p95``).  A local runner (no workers) has no report windows and no such
section; ``compare`` then judges by its bootstrap alone.
"""

from __future__ import annotations

from array import array
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from loadstack.gates import percentile

if TYPE_CHECKING:  # compare imports this module: it must not import (and so gevent-patch) Locust
    from locust.env import Environment

# Windows kept per request name.  Past this, every other one is dropped: a soak keeps a
# thinned, still even sample of its windows and the master's memory stays flat.  512 floats in
# an array (8 bytes each) per name: 2,048 Python floats in a list (32 bytes each) grew the
# master by about 1 MiB over a 30-minute soak of the platform profile before reaching the cap.
MAX_WINDOWS = 512
# Fewer windows than this give no noise figure (a spread of two or three values says little).
MIN_WINDOWS = 4


def quantile(values: Sequence[float], q: float) -> float:
    """Linear-interpolated quantile of ``values`` (not empty)."""
    ordered = sorted(values)
    pos = q * (len(ordered) - 1)
    low = int(pos)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (pos - low)


class WindowSpread:
    """Window p95s per (request type, name), from the workers' reports on the master."""

    def __init__(self) -> None:
        self.p95s: dict[tuple[str, str], array[float]] = {}

    def attach(self, environment: Environment) -> None:
        environment.events.worker_report.add_listener(self.receive)
        # The warm-up's end (and the web UI's reset) resets Locust's stats: the windows go too.
        environment.events.reset_stats.add_listener(self.reset)

    def receive(self, client_id: str = "", data: dict[str, Any] | None = None, **_: Any) -> None:
        for entry in (data or {}).get("stats") or ():
            times = entry.get("response_times") or {}
            count = sum(times.values())
            if not count:
                continue
            values = self.p95s.setdefault((entry["method"], entry["name"]), array("d"))
            values.append(float(percentile(times, count, 0.95)))
            if len(values) > MAX_WINDOWS:
                del values[::2]

    def reset(self, **_: Any) -> None:
        self.p95s.clear()

    def section(self) -> list[dict[str, Any]] | None:
        """Summary rows: windows seen and the 10th/50th/90th percentile of their p95s, per request name."""
        if not self.p95s:
            return None
        return [
            {
                "type": kind,
                "name": name,
                "windows": len(values),
                "q10_ms": round(quantile(values, 0.10), 3),
                "q50_ms": round(quantile(values, 0.50), 3),
                "q90_ms": round(quantile(values, 0.90), 3),
            }
            for (kind, name), values in sorted(self.p95s.items())
        ]


def noise_ms(summary: dict[str, Any], kind: str, name: str) -> float | None:
    """The run's window-to-window p95 spread (q90 − q10) for one request name, if it has enough windows."""
    for row in summary.get("window_p95") or ():
        if row.get("type") == kind and row.get("name") == name:
            if row.get("windows", 0) < MIN_WINDOWS:
                return None
            return float(row["q90_ms"]) - float(row["q10_ms"])
    return None
