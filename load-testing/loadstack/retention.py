"""What the master keeps over a long run, bounded: its memory stays flat however long the run.

Locust's structures grow with every second of a run on the master (a 30-minute soak saw
the master's anonymous memory grow +4.9 % from minute 5 to minute 30):

* every ``StatsEntry`` keeps a ``{second: count}`` of requests and of failures
  (``num_reqs_per_sec``, ``num_fail_per_sec``), one key per second per request name, merged
  from every worker report and never dropped.  Only the last ~12 seconds are ever read (the
  current RPS and failures per second); totals come from the entry's own counters.  Seconds
  older than :data:`PER_SECOND_KEPT_S` are dropped.
* ``RequestStats.history`` gets one point every 5 seconds for the report's and web UI's charts
  (current RPS, percentiles, users).  The charts must still cover the whole run, so old points
  are rolled up rather than dropped: past :data:`HISTORY_MAX_POINTS`, every other point of the
  older half goes.  The newest points keep full resolution and older ones get coarser each time
  (a 10-hour run keeps its first hours at a point every minute or so); the list never holds
  more than :data:`HISTORY_MAX_POINTS`.
* every request name keeps 20 one-second copies of its response-time dictionary for current
  percentiles no one reads on the master (:func:`drop_response_times_cache`); the total keeps its.

:class:`Retention` applies these every :data:`INTERVAL_S` seconds to the stats it is given (the
runner's and loadstack's per-user-class stats).  Pure logic on the structures: no gevent here.
"""

from __future__ import annotations

import time
from array import array
from collections.abc import Iterable, MutableSequence
from typing import Any, Protocol

PER_SECOND_KEPT_S = 60  # Locust reads the last 12 s; a minute leaves room for late worker reports
HISTORY_MAX_POINTS = 720  # one hour of Locust's 5-second points at full resolution
INTERVAL_S = 10.0


class _Entry(Protocol):
    num_reqs_per_sec: dict[int, int]
    num_fail_per_sec: dict[int, int]
    use_response_times_cache: bool
    response_times_cache: Any


class _Stats(Protocol):
    history: list[dict[str, Any]]
    total: Any
    entries: dict[Any, Any]


def trim_per_second(entry: _Entry, before: int) -> int:
    """Drop ``entry``'s per-second counts for seconds before ``before``; how many were dropped."""
    dropped = 0
    for counts in (entry.num_reqs_per_sec, entry.num_fail_per_sec):
        old = [second for second in counts if second < before]
        for second in old:
            del counts[second]
        dropped += len(old)
    return dropped


def drop_response_times_cache(entry: _Entry) -> bool:
    """Stop ``entry`` keeping copies of its response times; whether it kept any.

    On the master, Locust gives every request name a ``response_times_cache``: each second a
    worker report arrives, a full copy of the name's ``{rounded ms: count}`` dictionary, the last
    20 kept, for the *current* (last ~10 s) percentiles.  Only the total's is ever read (the
    chart's percentiles, the shape's p95); the per-name copies were the master's largest growing
    structure in a ``tracemalloc`` diff of a 14-minute ``platform`` soak (1.1 MiB, +36 KiB a
    minute as the names' dictionaries gained rarer latencies and each copy grew with them).
    Locust creates names with the cache on as reports bring them, so this runs every pass."""
    if not entry.use_response_times_cache:
        return False
    entry.use_response_times_cache = False
    entry.response_times_cache = None
    return True


def roll_up(points: MutableSequence[Any], max_points: int = HISTORY_MAX_POINTS) -> None:
    """Past ``max_points``, keep every other point of the older half (in place, order kept).

    The newest ``max_points // 2`` points are untouched; the first and the last point always stay,
    so a chart still spans the whole run."""
    if max_points < 4:
        raise ValueError("max_points must be at least 4")
    while len(points) > max_points:
        recent = max_points // 2
        older = len(points) - recent
        # Keep the first point and every other one after it: the run's start stays on the chart.
        points[:older] = points[:older:2]


class Retention:
    """Bounds the per-second counts, the per-name response-time copies and the chart history
    of the given stats (see the module)."""

    def __init__(
        self,
        kept_s: int = PER_SECOND_KEPT_S,
        max_points: int = HISTORY_MAX_POINTS,
    ) -> None:
        self.kept_s = kept_s
        self.max_points = max_points

    def apply(self, stats: Iterable[_Stats], now: float | None = None) -> int:
        """One pass over every stats object; the per-second counts dropped (for tests and logs)."""
        before = int(time.time() if now is None else now) - self.kept_s
        dropped = 0
        for one in stats:
            for entry in (one.total, *one.entries.values()):
                dropped += trim_per_second(entry, before)
            for entry in one.entries.values():  # not the total: its current percentiles are read
                drop_response_times_cache(entry)
            roll_up(one.history, self.max_points)
        return dropped


class ChangePoints(dict[int, Any]):
    """A series sampled every second that keeps only the seconds its value changed, and the latest.

    Read with carry-forward (``series.get(s, value at the previous second)``, as the workload
    timeline does) it gives back every sampled second, so a run of constant users costs two keys,
    not one per second."""

    def __init__(self) -> None:
        super().__init__()
        self._value: Any = None
        self._change: int | None = None  # the second of the last change
        self._tail: int | None = None  # the latest repeat of the value, replaced by the next one

    def record(self, second: int, value: Any) -> None:
        if self._change is not None and value == self._value:
            if second == self._change:
                return
            if self._tail is not None:
                self.pop(self._tail, None)
            self[second] = value
            self._tail = second
        else:
            self[second] = value
            self._value, self._change, self._tail = value, second, None


class PackedSamples:
    """Timed ``(time, int, int)`` samples in arrays: 24 bytes each instead of about 90.

    The queue sampler takes one per queue every couple of seconds and ``summary.json`` reports
    them all, so they cannot be dropped; as a list of tuples (a tuple, a float, the ints) they
    were a steady 5 KiB a minute of the master's growth for the ``platform`` profile's two
    queues.  :meth:`rows` gives back the same tuples, so the summary is unchanged."""

    def __init__(self) -> None:
        self._times = array("d")
        self._firsts = array("q")
        self._seconds = array("q")

    def append(self, at: float, first: int, second: int) -> None:
        self._times.append(at)
        self._firsts.append(first)
        self._seconds.append(second)

    def __len__(self) -> int:
        return len(self._times)

    def rows(self) -> list[tuple[float, int, int]]:
        return list(zip(self._times, self._firsts, self._seconds, strict=True))
