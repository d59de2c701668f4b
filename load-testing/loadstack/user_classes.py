"""Requests aggregated per user class (Locust keys its stats by name and method only).

Gates per user class need this second view.  Workers (and a local runner)
count each request into a :class:`ClassTally` (a few attribute updates, far
lighter than Locust's own ``RequestStats.log_request``); the deltas travel with
Locust's worker report and the master merges them into Locust ``StatsEntry``
objects, which give percentiles and RPS exactly as Locust computes them.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Any

import gevent
from locust.stats import RequestStats, StatsEntry

from loadstack import results
from loadstack.aggregation import Aggregator


def _greenlet_user_class() -> str | None:
    """The User running the current greenlet (Locust spawns user greenlets with the user as argument)."""
    args = getattr(gevent.getcurrent(), "args", None)
    return type(args[0]).__name__ if args else None


def round_ms(ms: float) -> int:
    """Locust's response-time bucketing (exact below 100 ms, then 2 significant digits)."""
    if ms < 100:
        return round(ms)
    if ms < 1000:
        return round(ms, -1)
    if ms < 10000:
        return round(ms, -2)
    return round(ms, -3)


@dataclass(slots=True)
class ClassTally:
    """One user class's requests since the last report."""

    count: int = 0
    failures: int = 0
    total_ms: float = 0.0
    min_ms: float = math.inf
    max_ms: float = 0.0
    total_bytes: int = 0
    histogram: dict[int, int] = field(default_factory=dict)


class UserClassStats(Aggregator):
    report_key = "loadstack_user_classes"

    def __init__(self) -> None:
        self.stats = RequestStats(use_response_times_cache=False)
        self._pending: dict[str, ClassTally] = {}

    def observe(
        self,
        request_type: str,
        name: str,
        response_time: float,
        response_length: int = 0,
        response: Any = None,
        context: dict | None = None,
        exception: BaseException | None = None,
        start_time: float | None = None,
        url: str | None = None,
        **_: Any,
    ) -> None:
        # Locust's own keywords are named so that no dict of extras is built per request.
        user_class = (context.get("user_class") if context else None) or _greenlet_user_class() or "unknown"
        tally = self._pending.get(user_class)
        if tally is None:
            tally = self._pending[user_class] = ClassTally()
        tally.count += 1
        if exception is not None:
            tally.failures += 1
        tally.total_ms += response_time
        if response_time < tally.min_ms:
            tally.min_ms = response_time
        if response_time > tally.max_ms:
            tally.max_ms = response_time
        tally.total_bytes += response_length or 0
        # Every request's path: the common case (< 100 ms) without the call to round_ms.
        bucket = round(response_time) if response_time < 100 else round_ms(response_time)
        histogram = tally.histogram
        histogram[bucket] = histogram.get(bucket, 0) + 1

    def drain(self) -> list[dict[str, Any]]:
        pending, self._pending = self._pending, {}
        now = time.time()  # requests are at most one report interval old: close enough for RPS
        return [
            {
                "name": cls,
                "count": t.count,
                "failures": t.failures,
                "total_ms": t.total_ms,
                "min_ms": t.min_ms,
                "max_ms": t.max_ms,
                "total_bytes": t.total_bytes,
                "histogram": t.histogram,
                "last": now,
            }
            for cls, t in pending.items()
        ]

    def merge(self, payload: list[dict[str, Any]]) -> None:
        for d in payload:
            key = (d["name"], "")
            entry = self.stats.entries.get(key)
            if entry is None:
                entry = self.stats.entries[key] = StatsEntry(self.stats, d["name"], "")
            entry.num_requests += d["count"]
            entry.num_failures += d["failures"]
            entry.total_response_time += d["total_ms"]
            entry.min_response_time = min(entry.min_response_time or d["min_ms"], d["min_ms"])
            entry.max_response_time = max(entry.max_response_time, d["max_ms"])
            entry.total_content_length += d["total_bytes"]
            for bucket, n in d["histogram"].items():
                b = int(bucket)
                entry.response_times[b] = entry.response_times.get(b, 0) + n
            entry.last_request_timestamp = max(entry.last_request_timestamp or 0, d["last"])
            # Locust's total_rps divides by the span of RequestStats.total, not the entry's.
            total = self.stats.total
            total.last_request_timestamp = max(total.last_request_timestamp or 0, d["last"])

    def reset(self) -> None:
        self._pending = {}
        self.stats.reset_all()

    def rows(self) -> list[dict[str, Any]]:
        self.sync()
        return [
            {"user_class": name, **results.entry_figures(entry)}  # the histogram: any percentile gate
            for (name, _), entry in sorted(self.stats.entries.items())
            if entry.num_requests
        ]
